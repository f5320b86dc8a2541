# Config validation, wildcard constraints and input functions shared by all rules.
# The logic lives in the xlsafety package, where it is unit-tested.

import yaml
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

from xlsafety.backends import missing_engine_warnings
from xlsafety.dataset import (
    embedded_dataset_path,
    is_url,
    MULTIJAIL_SHA256,
    MULTIJAIL_URL,
)
from xlsafety.errors import ConfigError
from xlsafety.study import (
    check_study,
    coerce_command_line_values,
    config_origin,
    configurations,
    fill_defaults,
    validate_config,
)
from xlsafety.sources import GENERATE, REANALYSIS, SIMULATE, prepare_source
from xlsafety.translate.settings import is_translated

SCHEMA = Path(workflow.basedir) / "config" / "schema" / "config.schema.yaml"
SCHEMA_CONTENT = yaml.safe_load(SCHEMA.read_text())

try:
    coerce_command_line_values(config, SCHEMA_CONTENT)
    # Lists every invalid key by its path; snakemake's validate() below then fills the defaults.
    validate_config(config, SCHEMA_CONTENT)
    validate(config, str(SCHEMA))
    fill_defaults(config, SCHEMA_CONTENT)
    # Simulated or imported data (config key source) bring their own configurations,
    # judge and, for imported files, languages; the file is read here, at parse time.
    SOURCE = prepare_source(config)
    check_study(config)
except ConfigError as error:
    # Snakemake names this file as the error's place, so the message names the config itself.
    origin = config_origin(
        workflow.configfiles, dict(getattr(workflow.config_settings, "config", {}))
    )
    raise ConfigError(f"{origin}: {error}") from None

GENERATED = SOURCE.kind == GENERATE
if GENERATED:
    for warning in missing_engine_warnings(config):
        logger.warning(warning)
CONFIGURATIONS = configurations(config) if GENERATED else SOURCE.configurations
LANGUAGES = list(config["languages"])
JUDGES = list(config["judges"]) if GENERATED else [SOURCE.judge]
# Languages whose prompts are machine translated (config key translation).
TRANSLATED_LANGUAGES = (
    [language for language in LANGUAGES if is_translated(config, language)]
    if GENERATED
    else []
)
IRT_MODEL = config["irt"]["model"]
# The model the summary reports first, then every other model the config asks for.
IRT_MODELS = list(dict.fromkeys([IRT_MODEL, *config["irt"]["models"]]))


wildcard_constraints:
    language="[a-z]{2,3}",
    model="[a-z0-9][a-z0-9.-]*",
    configuration="[a-z0-9][a-z0-9.-]*_[a-z0-9][a-z0-9.-]*",
    judge="[a-z0-9-]+",
    irt_model="[a-z0-9-]+",


def dataset_url():
    """The URL to download the dataset from, or None for local sources."""
    source = config["dataset"]["source"]
    if source == "multijail":
        return MULTIJAIL_URL
    return source if is_url(source) else None


def dataset_sha256():
    if config["dataset"]["source"] == "multijail":
        return MULTIJAIL_SHA256
    return config["dataset"]["sha256"]


def dataset_file():
    """The dataset CSV the prompts rule reads; the simulated or imported data file for other sources."""
    if not GENERATED:
        return SOURCE.data_file
    source = config["dataset"]["source"]
    if source == "embedded":
        return str(embedded_dataset_path())
    if dataset_url():
        return "results/dataset/dataset.csv"
    return source


def dataset_label():
    """How the summary names the study's data."""
    return config["dataset"]["source"] if GENERATED else SOURCE.label


def generations_of_study():
    """Every generations file of the study; none for simulated or imported judgments."""
    if not GENERATED:
        return []
    return expand(
        "results/generations/{configuration}/{language}.parquet",
        configuration=sorted(CONFIGURATIONS),
        language=LANGUAGES,
    )


def source_fragments():
    """Summary sections that the source adds: the recovery table of a simulation."""
    if SOURCE.kind == SIMULATE:
        return ["results/simulation/summary_fragment.md"]
    return []


def configuration_spec(wildcards):
    """Model and decoding settings of a configuration, as rule params."""
    spec = dict(CONFIGURATIONS[wildcards.configuration])
    model = config["models"][spec["model"]]
    spec["prompt_format"] = model["prompt_format"]
    spec["raw_template"] = model["raw_template"]
    spec["stop_strings"] = list(model["stop_strings"])
    return spec


def model_checkpoint(wildcards):
    """The prepared model folder of a local model; none for an API model."""
    model = CONFIGURATIONS[wildcards.configuration]["model"]
    if config["models"][model]["backend"] not in ("transformers", "vllm"):
        return []
    return f"results/models/{model}"


def passes(wildcards):
    return CONFIGURATIONS[wildcards.configuration]["passes"]


def judgments_of(wildcards):
    return expand(
        "results/judgments/{judge}/{configuration}/{language}.parquet",
        judge=wildcards.judge,
        configuration=sorted(CONFIGURATIONS),
        language=LANGUAGES,
    )


def irt_anchors(wildcards):
    """The irt.anchors value the fits read; with `auto`, the file of the selected anchors."""
    anchors = config["irt"]["anchors"]
    if anchors == "auto":
        return f"results/anchors/{wildcards.judge}/anchors.csv"
    return anchors


def irt_anchor_files(wildcards):
    """The anchor file among a fit's inputs, so that a new selection or an edit refits; none for a list."""
    anchors = irt_anchors(wildcards)
    return [anchors] if isinstance(anchors, str) else []


def calibration_outputs(extension="csv"):
    """The judges' calibration summary, and their pairwise agreement when the study has several judges.

    Only studies that run their judges have them, not simulated or imported judgments.
    """
    if not GENERATED:
        return []
    outputs = [f"results/calibration/summary.{extension}"]
    if len(JUDGES) > 1:
        outputs.append(f"results/agreement/judges.{extension}")
    return outputs


def final_outputs():
    """Every file that `rule all` asks for."""
    return [
        "results/summary.md",
        *expand("results/matrix/{judge}/wide.parquet", judge=JUDGES),
        *expand(
            "results/irt/{judge}/{irt_model}/parameters.csv",
            judge=JUDGES,
            irt_model=IRT_MODELS,
        ),
        *expand("results/analyses/{judge}/summary_fragment.md", judge=JUDGES),
        *(["results/simulation/recovery.csv"] if SOURCE.kind == SIMULATE else []),
        *(
            expand(
                "results/analyses/{judge}/tau_vs_translation_quality.csv",
                judge=JUDGES,
            )
            if TRANSLATED_LANGUAGES
            else []
        ),
        *calibration_outputs(),
    ]
