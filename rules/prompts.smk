rule fetch_dataset:
    output:
        "results/dataset/dataset.csv",
    params:
        url=dataset_url(),
        sha256=dataset_sha256(),
    log:
        "results/logs/fetch_dataset.log",
    conda:
        "../envs/prompts.yaml"
    script:
        "../scripts/fetch_dataset.py"


rule prompts:
    input:
        dataset=dataset_file(),
    output:
        "results/prompts/{language}.parquet",
    params:
        prompt_limit=config["dataset"]["prompt_limit"],
    log:
        "results/logs/prompts/{language}.log",
    conda:
        "../envs/prompts.yaml"
    script:
        "../scripts/prompts.py"
