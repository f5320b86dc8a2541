# Judged passes imported from a file in long format (config key source.kind:
# reanalysis), written as the judgments and prompts tables. The workflow read
# the file's configuration and language names at parse time (rules/common.smk).
# The logic lives in xlsafety/sources/reanalysis.py, where it is unit-tested.

from xlsafety.languages import known_languages

if SOURCE.kind == REANALYSIS:

    rule reanalysis_import:
        input:
            data=SOURCE.data_file,
        output:
            judgments=expand(
                "results/judgments/{judge}/{configuration}/{language}.parquet",
                judge=SOURCE.judge,
                configuration=sorted(CONFIGURATIONS),
                language=LANGUAGES,
            ),
            prompts=expand("results/prompts/{language}.parquet", language=LANGUAGES),
            configurations="results/reanalysis/configurations.csv",
        log:
            "results/logs/reanalysis/import.log",
        conda:
            "../envs/analysis.yaml"
        params:
            settings=config["source"]["reanalysis"],
            languages=LANGUAGES,
            known_languages=sorted(known_languages(config["language_metadata"])),
        script:
            "../scripts/reanalysis_import.py"
