rule prepare_model:
    output:
        directory("results/models/{model}"),
    log:
        "results/logs/models/{model}.log",
    conda:
        "../envs/generate.yaml"
    resources:
        mem_mb=4000,
    params:
        source=lambda wildcards: config["models"][wildcards.model]["source"],
    script:
        "../scripts/prepare_model.py"
