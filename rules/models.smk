rule prepare_model:
    output:
        directory("results/models/{model}"),
    params:
        source=lambda wildcards: config["models"][wildcards.model]["source"],
    log:
        "results/logs/models/{model}.log",
    resources:
        mem_mb=4000,
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/prepare_model.py"
