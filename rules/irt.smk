rule irt:
    input:
        cells="results/matrix/{judge}/cells.parquet",
        # The anchor file, when irt.anchors names one, so that editing it refits.
        anchors=lambda wildcards: (
            [config["irt"]["anchors"]]
            if isinstance(config["irt"]["anchors"], str)
            else []
        ),
    output:
        parameters="results/irt/{judge}/{irt_model}/parameters.parquet",
        csv="results/irt/{judge}/{irt_model}/parameters.csv",
        fit="results/irt/{judge}/{irt_model}/fit.json",
    log:
        "results/logs/irt/{judge}/{irt_model}.log",
    conda:
        "../envs/analysis.yaml"
    threads: config["irt"]["threads"]
    params:
        reference_language=config["reference_language"],
        anchors=config["irt"]["anchors"],
        tau_scale=config["irt"]["tau_scale"],
        max_iterations=config["irt"]["max_iterations"],
        gradient_tolerance=config["irt"]["gradient_tolerance"],
        standard_errors=config["irt"]["standard_errors"],
        scale_correction=config["irt"]["scale_correction"],
    script:
        "../scripts/irt.py"
