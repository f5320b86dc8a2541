rule generate:
    input:
        prompts="results/prompts/{language}.parquet",
        model=model_checkpoint,
    output:
        "results/generations/{configuration}/{language}.parquet",
    params:
        spec=configuration_spec,
        seed=config["seed"],
        batch_size=config["generation"]["batch_size"],
    threads: config["generation"]["threads"]
    log:
        "results/logs/generate/{configuration}/{language}.log",
    resources:
        mem_mb=4000,
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/generate.py"
