rule matrix:
    input:
        judgments=judgments_of,
    output:
        cells="results/matrix/{judge}/cells.parquet",
        wide="results/matrix/{judge}/wide.parquet",
    log:
        "results/logs/matrix/{judge}.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/matrix.py"
