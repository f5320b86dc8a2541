# Parameter families written as their own tables (xlsafety.irt.table.FAMILY_LABELS).
IRT_FAMILIES = ["theta", "delta", "beta", "gamma", "tau", "alpha", "steps"]


rule irt:
    input:
        cells="results/matrix/{judge}/cells.parquet",
        # The anchor file (named, or selected with `auto`), so that a change refits.
        anchors=irt_anchor_files,
    output:
        parameters="results/irt/{judge}/{irt_model}/parameters.parquet",
        csv="results/irt/{judge}/{irt_model}/parameters.csv",
        fit="results/irt/{judge}/{irt_model}/fit.json",
        # One table per parameter family; empty where the model lacks the family.
        tables=expand(
            "results/irt/{{judge}}/{{irt_model}}/{family}.parquet", family=IRT_FAMILIES
        ),
        table_csvs=expand(
            "results/irt/{{judge}}/{{irt_model}}/{family}.csv", family=IRT_FAMILIES
        ),
    log:
        "results/logs/irt/{judge}/{irt_model}.log",
    conda:
        "../envs/analysis.yaml"
    threads: config["irt"]["threads"]
    params:
        reference_language=config["reference_language"],
        anchors=irt_anchors,
        tau_scale=config["irt"]["tau_scale"],
        max_iterations=config["irt"]["max_iterations"],
        gradient_tolerance=config["irt"]["gradient_tolerance"],
        standard_errors=config["irt"]["standard_errors"],
        scale_correction=config["irt"]["scale_correction"],
    script:
        "../scripts/irt.py"
