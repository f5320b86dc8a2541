# Analyses of each judge's matrix and IRT fit, and the HTML report's captions.
# The logic lives in xlsafety/analyses, where it is unit-tested.

ANALYSES = "results/analyses/{judge}"
PARAMETERS = f"results/irt/{{judge}}/{IRT_MODEL}/parameters.parquet"
REFERENCE_PROMPTS = f"results/prompts/{config['reference_language']}.parquet"
ANCHORS = "results/anchors/{judge}"
# Every model the model comparison fits and compares, the configured ones first.
COMPARED_MODELS = list(
    dict.fromkeys([*IRT_MODELS, *config["irt"]["comparison_models"]])
)


report: "../report/workflow.rst"


rule analysis_jsr:
    input:
        cells="results/matrix/{judge}/cells.parquet",
        parameters=PARAMETERS,
    output:
        table=report(
            f"{ANALYSES}/jsr.csv",
            caption="../report/jsr.rst",
            category="JSR",
            labels={"judge": "{judge}", "content": "table"},
        ),
        figure=report(
            f"{ANALYSES}/jsr_vs_ability.png",
            caption="../report/jsr.rst",
            category="JSR",
            labels={"judge": "{judge}", "content": "figure"},
        ),
    log:
        "results/logs/analyses/{judge}/jsr.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/analysis_jsr.py"


rule analysis_uncertainty:
    input:
        cells="results/matrix/{judge}/cells.parquet",
    output:
        by_language=report(
            f"{ANALYSES}/entropy_by_language.csv",
            caption="../report/uncertainty.rst",
            category="Uncertainty",
            labels={"judge": "{judge}", "content": "by language"},
        ),
        by_resource=report(
            f"{ANALYSES}/entropy_by_resource.csv",
            caption="../report/uncertainty.rst",
            category="Uncertainty",
            labels={"judge": "{judge}", "content": "by resource level"},
        ),
        figure=report(
            f"{ANALYSES}/entropy.png",
            caption="../report/uncertainty.rst",
            category="Uncertainty",
            labels={"judge": "{judge}", "content": "figure"},
        ),
    log:
        "results/logs/analyses/{judge}/uncertainty.log",
    conda:
        "../envs/analysis.yaml"
    params:
        min_valid=2,
    script:
        "../scripts/analysis_uncertainty.py"


rule analysis_english_worse:
    input:
        cells="results/matrix/{judge}/cells.parquet",
        parameters=PARAMETERS,
    output:
        table=report(
            f"{ANALYSES}/english_worse.csv",
            caption="../report/english_worse.rst",
            category="English-worse",
            labels={"judge": "{judge}", "content": "per configuration"},
        ),
        counts=report(
            f"{ANALYSES}/english_worse_counts.csv",
            caption="../report/english_worse.rst",
            category="English-worse",
            labels={"judge": "{judge}", "content": "counts"},
        ),
        figure=report(
            f"{ANALYSES}/english_worse.png",
            caption="../report/english_worse.rst",
            category="English-worse",
            labels={"judge": "{judge}", "content": "figure"},
        ),
    log:
        "results/logs/analyses/{judge}/english_worse.log",
    conda:
        "../envs/analysis.yaml"
    params:
        reference_language=config["reference_language"],
    script:
        "../scripts/analysis_english_worse.py"


rule analysis_gap:
    input:
        parameters=PARAMETERS,
        prompts=REFERENCE_PROMPTS,
    output:
        top_tau=report(
            f"{ANALYSES}/top_tau.csv",
            caption="../report/gap.rst",
            category="Cross-lingual gap",
            labels={"judge": "{judge}", "content": "largest cells"},
        ),
        by_category=report(
            f"{ANALYSES}/tau_by_category.csv",
            caption="../report/gap.rst",
            category="Cross-lingual gap",
            labels={"judge": "{judge}", "content": "by harm category"},
        ),
        by_language=report(
            f"{ANALYSES}/tau_by_language.csv",
            caption="../report/gap.rst",
            category="Cross-lingual gap",
            labels={"judge": "{judge}", "content": "by language"},
        ),
        figure=report(
            f"{ANALYSES}/tau.png",
            caption="../report/gap.rst",
            category="Cross-lingual gap",
            labels={"judge": "{judge}", "content": "figure"},
        ),
    log:
        "results/logs/analyses/{judge}/gap.log",
    conda:
        "../envs/analysis.yaml"
    params:
        top_tau=config["summary"]["top_tau"],
        resamples=2000,
        seed=config["seed"],
    script:
        "../scripts/analysis_gap.py"


# Scheduled only when some languages are machine translated.
rule analysis_tau_quality:
    input:
        parameters=PARAMETERS,
        quality=expand(
            "results/translations/{language}_quality.csv",
            language=TRANSLATED_LANGUAGES,
        ),
    output:
        table=report(
            f"{ANALYSES}/tau_vs_translation_quality.csv",
            caption="../report/tau_quality.rst",
            category="Cross-lingual gap",
            labels={"judge": "{judge}", "content": "tau and translation quality"},
        ),
        figure=report(
            f"{ANALYSES}/tau_vs_translation_quality.png",
            caption="../report/tau_quality.rst",
            category="Cross-lingual gap",
            labels={"judge": "{judge}", "content": "quality figure"},
        ),
    log:
        "results/logs/analyses/{judge}/tau_quality.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/analysis_tau_quality.py"


rule analysis_dimensionality:
    input:
        cells="results/matrix/{judge}/cells.parquet",
        parameters=PARAMETERS,
        prompts=REFERENCE_PROMPTS,
    output:
        eigenvalues=report(
            f"{ANALYSES}/eigenvalues.csv",
            caption="../report/dimensionality.rst",
            category="Dimensionality",
            labels={"judge": "{judge}", "content": "eigenvalues"},
        ),
        q3=report(
            f"{ANALYSES}/q3.csv",
            caption="../report/dimensionality.rst",
            category="Dimensionality",
            labels={"judge": "{judge}", "content": "Q3 by pair type"},
        ),
        statistics=report(
            f"{ANALYSES}/dimensionality.csv",
            caption="../report/dimensionality.rst",
            category="Dimensionality",
            labels={"judge": "{judge}", "content": "statistics"},
        ),
        figure=report(
            f"{ANALYSES}/scree.png",
            caption="../report/dimensionality.rst",
            category="Dimensionality",
            labels={"judge": "{judge}", "content": "scree plot"},
        ),
    log:
        "results/logs/analyses/{judge}/dimensionality.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/analysis_dimensionality.py"


rule analysis_validation:
    input:
        cells="results/matrix/{judge}/cells.parquet",
        anchors=irt_anchor_files,
    output:
        predictions=f"{ANALYSES}/validation_predictions.csv",
        scores=report(
            f"{ANALYSES}/validation.csv",
            caption="../report/validation.rst",
            category="Predictive validation",
            labels={"judge": "{judge}", "content": "scores"},
        ),
        figure=report(
            f"{ANALYSES}/validation.png",
            caption="../report/validation.rst",
            category="Predictive validation",
            labels={"judge": "{judge}", "content": "figure"},
        ),
    log:
        "results/logs/analyses/{judge}/validation.log",
    conda:
        "../envs/analysis.yaml"
    params:
        irt_model=IRT_MODEL,
        reference_language=config["reference_language"],
        anchors=irt_anchors,
        tau_scale=config["irt"]["tau_scale"],
        max_iterations=config["irt"]["max_iterations"],
        folds=5,
        seed=config["seed"],
        # Model family of each configuration, for leave-one-family-out.
        families={
            name: spec.get("model", name) for name, spec in CONFIGURATIONS.items()
        },
    script:
        "../scripts/analysis_validation.py"


rule analysis_anchors:
    input:
        cells="results/matrix/{judge}/cells.parquet",
    output:
        anchors=report(
            f"{ANCHORS}/anchors.csv",
            caption="../report/anchors.rst",
            category="Anchors",
            labels={"judge": "{judge}", "content": "selected anchors"},
        ),
        dif=report(
            f"{ANCHORS}/dif.csv",
            caption="../report/anchors.rst",
            category="Anchors",
            labels={"judge": "{judge}", "content": "DIF screens"},
        ),
        figure=report(
            f"{ANCHORS}/dif.png",
            caption="../report/anchors.rst",
            category="Anchors",
            labels={"judge": "{judge}", "content": "figure"},
        ),
    log:
        "results/logs/anchors/{judge}.log",
    conda:
        "../envs/analysis.yaml"
    params:
        reference_language=config["reference_language"],
        selection=config["irt"]["anchor_selection"],
        max_iterations=config["irt"]["max_iterations"],
    script:
        "../scripts/analysis_anchors.py"


rule analysis_model_comparison:
    input:
        cells="results/matrix/{judge}/cells.parquet",
        fits=expand("results/irt/{{judge}}/{model}/fit.json", model=COMPARED_MODELS),
        parameters=expand(
            "results/irt/{{judge}}/{model}/parameters.parquet", model=COMPARED_MODELS
        ),
    output:
        table=report(
            f"{ANALYSES}/model_comparison.csv",
            caption="../report/model_comparison.rst",
            category="Model selection and fit",
            labels={"judge": "{judge}", "content": "information criteria"},
        ),
        figure=report(
            f"{ANALYSES}/model_comparison.png",
            caption="../report/model_comparison.rst",
            category="Model selection and fit",
            labels={"judge": "{judge}", "content": "information criteria figure"},
        ),
    log:
        "results/logs/analyses/{judge}/model_comparison.log",
    conda:
        "../envs/analysis.yaml"
    params:
        models=COMPARED_MODELS,
    script:
        "../scripts/analysis_model_comparison.py"


rule analysis_item_fit:
    input:
        cells="results/matrix/{judge}/cells.parquet",
        parameters=PARAMETERS,
    output:
        item_table=report(
            f"{ANALYSES}/item_fit.csv",
            caption="../report/item_fit.rst",
            category="Model selection and fit",
            labels={"judge": "{judge}", "content": "item fit"},
        ),
        person_table=report(
            f"{ANALYSES}/person_fit.csv",
            caption="../report/item_fit.rst",
            category="Model selection and fit",
            labels={"judge": "{judge}", "content": "person fit"},
        ),
        figure=report(
            f"{ANALYSES}/fit.png",
            caption="../report/item_fit.rst",
            category="Model selection and fit",
            labels={"judge": "{judge}", "content": "fit figure"},
        ),
    log:
        "results/logs/analyses/{judge}/item_fit.log",
    conda:
        "../envs/analysis.yaml"
    params:
        fit_range=[0.7, 1.3],
    script:
        "../scripts/analysis_item_fit.py"


rule analysis_information:
    input:
        cells="results/matrix/{judge}/cells.parquet",
        parameters=PARAMETERS,
    output:
        table=report(
            f"{ANALYSES}/information.csv",
            caption="../report/information.rst",
            category="Model selection and fit",
            labels={"judge": "{judge}", "content": "test information"},
        ),
        figure=report(
            f"{ANALYSES}/information.png",
            caption="../report/information.rst",
            category="Model selection and fit",
            labels={"judge": "{judge}", "content": "test information figure"},
        ),
    log:
        "results/logs/analyses/{judge}/information.log",
    conda:
        "../envs/analysis.yaml"
    params:
        # Lowest and highest robustness and the number of points of the curves.
        grid=[-4.0, 4.0, 161],
    script:
        "../scripts/analysis_information.py"


rule analysis_summary_fragment:
    input:
        jsr=f"{ANALYSES}/jsr.csv",
        entropy_by_resource=f"{ANALYSES}/entropy_by_resource.csv",
        english_worse_counts=f"{ANALYSES}/english_worse_counts.csv",
        tau_by_language=f"{ANALYSES}/tau_by_language.csv",
        dimensionality=f"{ANALYSES}/dimensionality.csv",
        validation=f"{ANALYSES}/validation.csv",
        anchors=f"{ANCHORS}/anchors.csv",
        dif=f"{ANCHORS}/dif.csv",
        model_comparison=f"{ANALYSES}/model_comparison.csv",
        item_fit=f"{ANALYSES}/item_fit.csv",
        person_fit=f"{ANALYSES}/person_fit.csv",
        information=f"{ANALYSES}/information.csv",
    output:
        f"{ANALYSES}/summary_fragment.md",
    log:
        "results/logs/analyses/{judge}/summary_fragment.log",
    conda:
        "../envs/analysis.yaml"
    script:
        "../scripts/analysis_summary_fragment.py"
