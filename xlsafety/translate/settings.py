"""Per-language translation settings from the config, and the language checks of `check_study`.

A language uses the backend named under `translation.<language>.backend`, or
`dataset` when the config has no entry for it. Every translation starts from
the prompts of the reference language, so that language must come from the
dataset.
"""

import csv
from dataclasses import asdict
from pathlib import Path

from xlsafety.dataset import embedded_dataset_path, is_url
from xlsafety.errors import ConfigError
from xlsafety.languages import known_languages
from xlsafety.sources import check_language_metadata
from xlsafety.translate.llm import check_template
from xlsafety.translate.registry import BACKENDS, Direction, backend

# The language columns of MultiJail, known without downloading it.
MULTIJAIL_LANGUAGES = ("en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv")
NON_LANGUAGE_COLUMNS = ("id", "tags", "source")


def backend_of(config: dict, language: str) -> str:
    """Return the name of the backend that makes the prompts of `language`."""
    return config.get("translation", {}).get(language, {}).get("backend", "dataset")


def is_translated(config: dict, language: str) -> bool:
    """Tell whether `language` gets its prompts from a translation job rather than the dataset."""
    return BACKENDS[backend_of(config, language)].factory is not None


def direction(config: dict, language: str) -> Direction:
    """Return the direction from the reference language into `language`, with names and codes."""
    metadata = known_languages(config.get("language_metadata"))
    reference = config["reference_language"]
    entry = config["translation"][language]
    return Direction(
        source=reference,
        target=language,
        source_name=metadata[reference].name,
        target_name=metadata[language].name,
        source_nllb=metadata[reference].nllb,
        target_nllb=metadata[language].nllb,
        source_code=entry.get("source_code"),
        target_code=entry.get("target_code"),
    )


def translation_settings(config: dict, language: str) -> dict:
    """Return everything the translate job of `language` needs, as plain values for rule params.

    Only the entry of this language, the reference language and the model it
    names go in, so a change to another language's settings reruns nothing here.
    """
    entry = config["translation"][language]
    name = entry["backend"]
    settings = {
        "backend": name,
        "model": entry["model"],
        "back_model": entry.get("back_model"),
        "origin": f"{name}:{entry['model']}",
        "direction": asdict(direction(config, language)),
        "template": entry.get("template"),
        "stop_strings": entry.get("stop_strings"),
        "max_new_tokens": entry["max_new_tokens"],
        "batch_size": entry["batch_size"],
        "chrf_threshold": entry["chrf_threshold"],
        "prompt_format": None,
    }
    if backend(name).model_kind == "models":
        settings["prompt_format"] = config["models"][entry["model"]]["prompt_format"]
    return settings


def prompt_inputs(config: dict, language: str, dataset_file: str) -> dict[str, str]:
    """Return the input of the prompts job of `language`: the dataset, or the language's translations."""
    if is_translated(config, language):
        return {"translation": f"results/translations/{language}.parquet"}
    return {"dataset": dataset_file}


def translation_inputs(config: dict, language: str) -> dict[str, str]:
    """Return the input files of the translate job of `language`, by name.

    `source` is the prompts table of the reference language. The llm backend
    also needs its prepared model folders, `model` and maybe `back_model`.

    NOTE: a seq2seq model is a rule parameter, not an input, because it may be
    a hub id. Replacing the files of a local model folder therefore reruns
    nothing; use `--forcerun translate` after doing so.
    """
    if not is_translated(config, language):
        raise ConfigError(
            f"results/translations/{language}.parquet was asked for, but language {language!r} "
            f"uses the {backend_of(config, language)!r} backend; set translation.{language}.backend "
            "to a translating backend"
        )
    entry = config["translation"][language]
    inputs = {"source": f"results/prompts/{config['reference_language']}.parquet"}
    if backend(entry["backend"]).model_kind == "models":
        inputs["model"] = f"results/models/{entry['model']}"
        if entry.get("back_model"):
            inputs["back_model"] = f"results/models/{entry['back_model']}"
    return inputs


def dataset_languages(source: str) -> set[str] | None:
    """Return the language columns of a dataset source, or None when they are unknown before a run.

    The columns of a URL source are known only after the download, and an
    unreadable local file is reported by the prompts job with the details.
    """
    if source == "embedded":
        return _csv_languages(embedded_dataset_path())
    if source == "multijail":
        return set(MULTIJAIL_LANGUAGES)
    if is_url(source) or not Path(source).is_file():
        return None
    try:
        return _csv_languages(Path(source))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _csv_languages(path: Path) -> set[str]:
    with open(path, newline="", encoding="utf-8-sig") as stream:
        header = next(csv.reader(stream), [])
    return {column.strip() for column in header} - set(NON_LANGUAGE_COLUMNS) - {""}


def check_languages(config: dict) -> None:
    """Raise ConfigError unless every studied language has metadata and a way to get its prompts."""
    check_language_metadata(config)
    languages = config["languages"]
    metadata = known_languages(config.get("language_metadata"))

    for language, entry in config.get("translation", {}).items():
        _check_entry(config, language, entry, metadata)

    reference = config["reference_language"]
    if is_translated(config, reference):
        raise ConfigError(
            f"config key translation.{reference}.backend: {reference!r} is the reference language, "
            "which every translation starts from, so its prompts must come from the dataset; "
            "set backend: dataset or remove the entry"
        )

    columns = dataset_languages(config["dataset"]["source"])
    if columns is None:
        return
    for language in languages:
        if not is_translated(config, language) and language not in columns:
            raise ConfigError(
                f"config key languages: {language!r} is not a column of the dataset "
                f"{config['dataset']['source']!r} (columns: {sorted(columns)}) and has no "
                f"translation backend; add translation: {{{language}: {{backend: llm, model: "
                "<a name under models>}}, use the seq2seq backend, or remove the language"
            )


def _check_entry(config: dict, language: str, entry: dict, metadata: dict) -> None:
    key = f"translation.{language}"
    try:
        found = backend(entry["backend"])
    except ConfigError as error:
        raise ConfigError(f"config key {key}.backend: {error}") from error
    if found.factory is None:
        return
    if language not in metadata:
        raise ConfigError(f"config key {key}: no metadata for {[language]}; add it under language_metadata")

    if not entry.get("model"):
        raise ConfigError(f"config key {key}.model: the {found.name} backend needs a model ({found.description})")
    if found.model_kind == "models":
        for field in ("model", "back_model"):
            name = entry.get(field)
            if name is not None and name not in config["models"]:
                raise ConfigError(
                    f"config key {key}.{field}: model {name!r} is not defined under models "
                    f"(defined: {sorted(config['models'])}); the llm backend uses a model from there"
                )
            if name is not None and config["models"][name].get("backend", "transformers") != "transformers":
                raise ConfigError(
                    f"config key {key}.{field}: model {name!r} uses the "
                    f"{config['models'][name]['backend']!r} generation backend, but the llm translation "
                    "backend runs local transformers models only; name a transformers model"
                )
    if entry.get("template") is not None:
        check_template(entry["template"], f"{key}.template")
