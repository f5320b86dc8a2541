"""The source of a study's judged responses: the `source` section of the config.

`generate` (the default) has the workflow generate responses with the
configured models and judge them. `simulate` draws judged passes from the
multigroup model with known parameters, as a self-check of the fit and the
analyses. `reanalysis` imports passes that were judged elsewhere, such as a
released study's data. The last two write the judgments and prompts tables in
the layout that the generate path writes, so the matrix, IRT and analysis
rules run unchanged.

The workflow needs the configuration and language names of a study when it
builds the job graph. A simulation derives them from its settings. An
imported file is read when the workflow starts (only its name columns, and
cached, see `reanalysis.study_names`), so every rule's inputs and parameters
stay plain lists.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from xlsafety.errors import ConfigError
from xlsafety.languages import known_languages

log = logging.getLogger(__name__)

GENERATE = "generate"
SIMULATE = "simulate"
REANALYSIS = "reanalysis"


@dataclass
class Source:
    """The study's source of judged responses, as the workflow needs it when it builds the job graph."""

    kind: str
    # Configuration id -> {model, decoding, passes, origin, name}; empty for the generate source,
    # whose configurations come from the models and decoding sections.
    configurations: dict[str, dict] = field(default_factory=dict)
    # The judge name under results/judgments/; None for the generate source, which uses config judges.
    judge: str | None = None
    # The file the summary names and hashes as the study's data; None for the generate source.
    data_file: str | None = None
    # How the summary describes the data.
    label: str | None = None


def prepare_source(config: dict, workdir: Path | None = None) -> Source:
    """Check the source section and complete the config for a simulated or imported study.

    Simulated and imported data need no models or decoding variants, so those
    sections default to empty. A simulation's true anchors become irt.anchors
    when the config gives none. An imported study's languages are those of its
    file (or the subset in source.reanalysis.languages), which replace the
    languages key.
    """
    kind = config["source"]["kind"]
    if kind == GENERATE:
        return Source(kind)

    config.setdefault("models", {})
    config.setdefault("decoding", {})
    if kind == SIMULATE:
        from xlsafety.sources.simulation import prepare_simulation

        return prepare_simulation(config)

    from xlsafety.sources.reanalysis import prepare_reanalysis

    return prepare_reanalysis(config, Path.cwd() if workdir is None else workdir)


def check_languages_known(config: dict) -> None:
    """Raise ConfigError unless the languages are unique, include the reference and have metadata."""
    check_language_list(config)
    check_language_metadata(config)


def check_language_list(config: dict) -> None:
    """Raise ConfigError unless the languages are unique and include the reference language."""
    languages = config["languages"]
    if len(set(languages)) != len(languages):
        raise ConfigError(f"config key languages: duplicate entries in {languages}")
    if config["reference_language"] not in languages:
        raise ConfigError(
            f"config key reference_language: {config['reference_language']!r} is not in "
            f"languages {languages}; the IRT model needs its reference language"
        )


def check_language_metadata(config: dict) -> None:
    """Raise ConfigError unless every language has metadata, built in or under language_metadata."""
    languages = config["languages"]
    metadata = known_languages(config.get("language_metadata"))
    unknown = [language for language in languages if language not in metadata]
    if unknown:
        raise ConfigError(
            f"config key languages: no metadata for {unknown} (known: {sorted(metadata)}); add "
            f"each under language_metadata, for example language_metadata: {{{unknown[0]}: "
            "{name: ..., script: ..., resource: low}}"
        )
