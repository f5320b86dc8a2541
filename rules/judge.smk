from xlsafety.judges.settings import (
    RULE_API,
    RULE_LOCAL,
    RULE_REFUSAL,
    api_runtime_minutes as judge_runtime_minutes,
    judge_inputs,
    judge_params,
    judge_pattern,
)


# The phrase-based refusal judge: cheap, bundled into few jobs on SLURM.
rule judge:
    input:
        generations="results/generations/{configuration}/{language}.parquet",
        prompts="results/prompts/{language}.parquet",
    output:
        "results/judgments/{judge}/{configuration}/{language}.parquet",
    log:
        "results/logs/judge/{judge}/{configuration}/{language}.log",
    wildcard_constraints:
        judge=judge_pattern(config, RULE_REFUSAL),
    conda:
        "../envs/judge.yaml"
    params:
        passes=passes,
        definition=lambda wildcards: judge_params(config, wildcards.judge),
    script:
        "../scripts/judge.py"


# Judges whose models are all API models: no local model, one thread, and a
# runtime that covers every round of requests within the models' time budgets.
rule judge_api:
    input:
        generations="results/generations/{configuration}/{language}.parquet",
        prompts="results/prompts/{language}.parquet",
    output:
        "results/judgments/{judge}/{configuration}/{language}.parquet",
    log:
        "results/logs/judge/{judge}/{configuration}/{language}.log",
    wildcard_constraints:
        judge=judge_pattern(config, RULE_API),
    conda:
        "../envs/judge.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=lambda wildcards: judge_runtime_minutes(config, wildcards.judge),
    params:
        passes=passes,
        definition=lambda wildcards: judge_params(config, wildcards.judge),
    script:
        "../scripts/judge.py"


# Judges that load a local judge or translation model, prepared once like the models under study.
rule judge_local:
    input:
        unpack(lambda wildcards: judge_inputs(config, wildcards.judge)),
        generations="results/generations/{configuration}/{language}.parquet",
        prompts="results/prompts/{language}.parquet",
    output:
        "results/judgments/{judge}/{configuration}/{language}.parquet",
    log:
        "results/logs/judge/{judge}/{configuration}/{language}.log",
    wildcard_constraints:
        judge=judge_pattern(config, RULE_LOCAL),
    conda:
        "../envs/judge.yaml"
    threads: config["generation"]["threads"]
    resources:
        mem_mb=4000,
    params:
        passes=passes,
        definition=lambda wildcards: judge_params(config, wildcards.judge),
    script:
        "../scripts/judge.py"
