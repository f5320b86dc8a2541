rule generate:
    input:
        prompts="results/prompts/{language}.parquet",
        model=model_checkpoint,
    output:
        "results/generations/{configuration}/{language}.parquet",
    log:
        "results/logs/generate/{configuration}/{language}.log",
    conda:
        "../envs/generate.yaml"
    threads: config["generation"]["threads"]
    resources:
        mem_mb=4000,
    params:
        spec=configuration_spec,
        seed=config["seed"],
        batch_size=config["generation"]["batch_size"],
    script:
        "../scripts/generate.py"
