from xlsafety.backends import (
    LOCAL_BACKENDS,
    api_runtime_minutes,
    configuration_pattern,
    endpoint_of,
)


# Local models (transformers or vllm): the prepared checkpoint is an input, and the job loads it once.
# The batch size comes from the config rather than params: it does not change the text in
# float32, so tuning it does not make Snakemake redo finished generations.
rule generate:
    input:
        prompts="results/prompts/{language}.parquet",
        model=model_checkpoint,
    output:
        "results/generations/{configuration}/{language}.parquet",
    log:
        "results/logs/generate/{configuration}/{language}.log",
    wildcard_constraints:
        configuration=configuration_pattern(config, *LOCAL_BACKENDS),
    conda:
        "../envs/generate.yaml"
    threads: config["generation"]["threads"]
    resources:
        mem_mb=4000,
    params:
        spec=configuration_spec,
        seed=config["seed"],
        backend=lambda wildcards: config["models"][
            CONFIGURATIONS[wildcards.configuration]["model"]
        ]["backend"],
        device=config["generation"]["device"],
        dtype=config["generation"]["dtype"],
    script:
        "../scripts/generate.py"


# API models: no local model and no GPU; the job mostly waits on the endpoint,
# so it needs one thread, little memory and a runtime that covers its time budget.
rule generate_api:
    input:
        prompts="results/prompts/{language}.parquet",
    output:
        "results/generations/{configuration}/{language}.parquet",
    log:
        "results/logs/generate/{configuration}/{language}.log",
    wildcard_constraints:
        configuration=configuration_pattern(config, "openai"),
    conda:
        "../envs/generate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=lambda wildcards: api_runtime_minutes(
            config, CONFIGURATIONS[wildcards.configuration]["model"]
        ),
    params:
        spec=configuration_spec,
        seed=config["seed"],
        endpoint=lambda wildcards: endpoint_of(
            config, CONFIGURATIONS[wildcards.configuration]["model"]
        ),
    script:
        "../scripts/generate.py"
