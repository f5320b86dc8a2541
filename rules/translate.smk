# Prompts of languages that the dataset lacks, translated from the reference language.

from xlsafety.translate.settings import translation_inputs, translation_settings


rule translate:
    input:
        unpack(lambda wildcards: translation_inputs(config, wildcards.language)),
    output:
        translations="results/translations/{language}.parquet",
        quality="results/translations/{language}_quality.csv",
    log:
        "results/logs/translate/{language}.log",
    conda:
        "../envs/generate.yaml"
    threads: config["generation"]["threads"]
    resources:
        mem_mb=4000,
    params:
        settings=lambda wildcards: translation_settings(config, wildcards.language),
    script:
        "../scripts/translate.py"
