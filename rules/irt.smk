rule irt:
    input:
        cells="results/matrix/{judge}/cells.parquet",
    output:
        parameters="results/irt/{judge}/{irt_model}/parameters.parquet",
        csv="results/irt/{judge}/{irt_model}/parameters.csv",
        fit="results/irt/{judge}/{irt_model}/fit.json",
    log:
        "results/logs/irt/{judge}/{irt_model}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        reference_language=config["reference_language"],
        anchors=sorted(config["irt"]["anchors"]),
        tau_scale=config["irt"]["tau_scale"],
        max_iterations=config["irt"]["max_iterations"],
    script:
        "../scripts/irt.py"
