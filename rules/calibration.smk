# Judge calibration and agreement: every judge scores the calibration set, per
# language, and its agreement with the labels is gathered with the languages
# under calibration.min_kappa flagged; when the study has several judges, their
# agreement with each other on the study's generations.
# The logic lives in xlsafety/judges/calibration.py and agreement.py.

from xlsafety.judges.calibration import calibrated_languages, shipped_calibration_path
from xlsafety.judges.settings import (
    RULE_API,
    RULE_LOCAL,
    RULE_REFUSAL,
    api_runtime_minutes as calibration_runtime_minutes,
    judge_inputs as calibration_model_inputs,
    judge_params as calibration_judge_params,
    judge_pattern as calibration_judge_pattern,
)

CALIBRATION_SET = config["calibration"]["path"] or str(shipped_calibration_path())
# Read at parse time, so that a bad calibration file stops the workflow before
# any job, and only studied languages with calibration rows get calibrate jobs.
CALIBRATED_LANGUAGES = calibrated_languages(CALIBRATION_SET, LANGUAGES)


# The refusal judge and judges that load a local model.
rule calibrate:
    input:
        unpack(lambda wildcards: calibration_model_inputs(config, wildcards.judge)),
        calibration=CALIBRATION_SET,
    output:
        "results/calibration/{judge}/{language}.parquet",
    log:
        "results/logs/calibration/{judge}/{language}.log",
    wildcard_constraints:
        judge=calibration_judge_pattern(config, RULE_REFUSAL)
        + "|"
        + calibration_judge_pattern(config, RULE_LOCAL),
    conda:
        "../envs/judge.yaml"
    threads: config["generation"]["threads"]
    params:
        definition=lambda wildcards: calibration_judge_params(config, wildcards.judge),
    script:
        "../scripts/calibrate.py"


# Judges whose models are all API models, with a runtime that covers every round of requests.
rule calibrate_api:
    input:
        calibration=CALIBRATION_SET,
    output:
        "results/calibration/{judge}/{language}.parquet",
    log:
        "results/logs/calibration/{judge}/{language}.log",
    wildcard_constraints:
        judge=calibration_judge_pattern(config, RULE_API),
    conda:
        "../envs/judge.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=lambda wildcards: calibration_runtime_minutes(config, wildcards.judge),
    params:
        definition=lambda wildcards: calibration_judge_params(config, wildcards.judge),
    script:
        "../scripts/calibrate.py"


rule calibration_summary:
    input:
        expand(
            "results/calibration/{judge}/{language}.parquet",
            judge=JUDGES,
            language=CALIBRATED_LANGUAGES,
        ),
    output:
        table="results/calibration/summary.parquet",
        csv=report(
            "results/calibration/summary.csv",
            caption="../report/calibration.rst",
            category="Judge calibration",
            labels={"content": "agreement with the calibration labels"},
        ),
    log:
        "results/logs/calibration/summary.log",
    conda:
        "../envs/analysis.yaml"
    params:
        judges=JUDGES,
        languages=LANGUAGES,
        min_kappa=config["calibration"]["min_kappa"],
    script:
        "../scripts/calibration_summary.py"


rule judge_agreement:
    input:
        expand(
            "results/judgments/{judge}/{configuration}/{language}.parquet",
            judge=JUDGES,
            configuration=sorted(CONFIGURATIONS),
            language=LANGUAGES,
        ),
    output:
        table="results/agreement/judges.parquet",
        csv=report(
            "results/agreement/judges.csv",
            caption="../report/judge_agreement.rst",
            category="Judge agreement",
            labels={"content": "pairwise agreement"},
        ),
    log:
        "results/logs/agreement/judges.log",
    conda:
        "../envs/analysis.yaml"
    params:
        judges=JUDGES,
        languages=LANGUAGES,
    script:
        "../scripts/judge_agreement.py"
