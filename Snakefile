# xlsafety: why do LLM safety guardrails degrade across languages?
#
# prompts -> prepare_model -> generate -> judge -> matrix -> irt -> summary,
# cached per (configuration, language). Run with `snakemake --cores 2`;
# config/README.md explains the configuration.

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names other files: Snakemake would
# otherwise merge those over this one, and a study would inherit its models
# and decoding variants.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"


# Simulated or imported judgments (config key source) replace these rules, so
# such a study schedules no dataset, model or generation job.
if GENERATED:

    include: "rules/prompts.smk"
    include: "rules/translate.smk"
    include: "rules/models.smk"
    include: "rules/generate.smk"
    include: "rules/judge.smk"
    include: "rules/calibration.smk"


include: "rules/simulation.smk"
include: "rules/reanalysis.smk"
include: "rules/matrix.smk"
include: "rules/irt.smk"
include: "rules/summary.smk"
include: "rules/analyses.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
