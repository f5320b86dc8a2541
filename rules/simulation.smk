# Simulated judged passes with known parameters (config key source.kind:
# simulate), and how well each IRT fit recovers them. The logic lives in
# xlsafety/sources/simulation.py, where it is unit-tested.

from xlsafety.sources.simulation import study_languages

if SOURCE.kind == SIMULATE:

    rule simulate:
        output:
            judgments=expand(
                "results/judgments/{judge}/{configuration}/{language}.parquet",
                judge=SOURCE.judge,
                configuration=sorted(CONFIGURATIONS),
                language=LANGUAGES,
            ),
            prompts=expand("results/prompts/{language}.parquet", language=LANGUAGES),
            truth=SOURCE.data_file,
        log:
            "results/logs/simulation/simulate.log",
        conda:
            "../envs/analysis.yaml"
        params:
            settings=config["source"]["simulation"],
            seed=config["seed"],
            languages=study_languages(config),
        script:
            "../scripts/simulate.py"

    rule simulation_recovery:
        input:
            truth=SOURCE.data_file,
            parameters=expand(
                "results/irt/{judge}/{irt_model}/parameters.parquet",
                judge=SOURCE.judge,
                irt_model=IRT_MODELS,
            ),
        output:
            table=report(
                "results/simulation/recovery.csv",
                caption="../report/simulation.rst",
                category="Simulation self-check",
                labels={"content": "recovery"},
            ),
            parquet="results/simulation/recovery.parquet",
            fragment="results/simulation/summary_fragment.md",
        log:
            "results/logs/simulation/recovery.log",
        conda:
            "../envs/analysis.yaml"
        params:
            models=IRT_MODELS,
            label=SOURCE.label,
        script:
            "../scripts/simulation_recovery.py"
