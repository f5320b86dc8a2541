from xlsafety.translate.settings import prompt_inputs


rule fetch_dataset:
    output:
        "results/dataset/dataset.csv",
    log:
        "results/logs/fetch_dataset.log",
    conda:
        "../envs/prompts.yaml"
    params:
        url=dataset_url(),
        sha256=dataset_sha256(),
    script:
        "../scripts/fetch_dataset.py"


rule prompts:
    input:
        unpack(
            lambda wildcards: prompt_inputs(config, wildcards.language, dataset_file())
        ),
    output:
        "results/prompts/{language}.parquet",
    log:
        "results/logs/prompts/{language}.log",
    conda:
        "../envs/prompts.yaml"
    params:
        prompt_limit=config["dataset"]["prompt_limit"],
    script:
        "../scripts/prompts.py"
