from xlsafety.translate.settings import is_translated


rule summary_tables:
    input:
        cells="results/matrix/{judge}/cells.parquet",
        parameters=f"results/irt/{{judge}}/{IRT_MODEL}/parameters.parquet",
        prompts=f"results/prompts/{config['reference_language']}.parquet",
    output:
        jsr="results/summary/{judge}/jsr.csv",
        theta="results/summary/{judge}/theta.csv",
        gamma="results/summary/{judge}/gamma.csv",
        top_tau="results/summary/{judge}/top_tau.csv",
    log:
        "results/logs/summary/{judge}_tables.log",
    conda:
        "../envs/analysis.yaml"
    params:
        top_tau=config["summary"]["top_tau"],
    script:
        "../scripts/summary_tables.py"


rule summary:
    input:
        dataset=dataset_file(),
        cells=expand("results/matrix/{judge}/cells.parquet", judge=JUDGES),
        fits=expand(
            "results/irt/{judge}/{irt_model}/fit.json",
            judge=JUDGES,
            irt_model=IRT_MODEL,
        ),
        judgments=expand(
            "results/judgments/{judge}/{configuration}/{language}.parquet",
            judge=JUDGES,
            configuration=sorted(CONFIGURATIONS),
            language=LANGUAGES,
        ),
        generations=generations_of_study(),
        tables=expand(
            "results/summary/{judge}/{table}.csv",
            judge=JUDGES,
            table=["jsr", "theta", "gamma", "top_tau"],
        ),
        fragments=[
            *expand("results/analyses/{judge}/summary_fragment.md", judge=JUDGES),
            *source_fragments(),
        ],
        translation_quality=[
            f"results/translations/{language}_quality.csv"
            for language in LANGUAGES
            if is_translated(config, language)
        ],
        calibration=calibration_outputs("parquet"),
    output:
        "results/summary.md",
    log:
        "results/logs/summary.log",
    conda:
        "../envs/analysis.yaml"
    params:
        judges=JUDGES,
        languages=LANGUAGES,
        configurations=CONFIGURATIONS,
        models={name: config["models"][name] for name in sorted(config["models"])},
        dataset_source=dataset_label(),
    script:
        "../scripts/summary.py"
