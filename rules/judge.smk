rule judge:
    input:
        generations="results/generations/{configuration}/{language}.parquet",
        prompts="results/prompts/{language}.parquet",
    output:
        "results/judgments/{judge}/{configuration}/{language}.parquet",
    log:
        "results/logs/judge/{judge}/{configuration}/{language}.log",
    conda:
        "../envs/judge.yaml"
    params:
        passes=passes,
    script:
        "../scripts/judge.py"
