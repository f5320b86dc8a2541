"""The study as declared in the workflow config: models, decoding variants, configurations.

The JSON Schema in `config/schema/config.schema.yaml` checks types and fills
defaults. `check_study` adds the checks that a schema cannot express, so a bad
config is rejected before any job runs, with the key path and the fix.
"""

import os
import re

from xlsafety.errors import ConfigError, ModelError
from xlsafety.models import embedded_model
from xlsafety.translate.settings import check_languages

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
SEPARATOR = "_"


def configuration_id(model: str, decoding: str) -> str:
    """Return the readable slug of a configuration, such as `smollm2-135m_greedy`."""
    return f"{model}{SEPARATOR}{decoding}"


def configurations(config: dict) -> dict[str, dict]:
    """Expand the config into {configuration id: model name, decoding name and settings}.

    An empty `configurations` list means every model with every decoding variant.
    """
    declared = config.get("configurations") or [
        {"model": model, "decoding": sorted(config["decoding"])} for model in sorted(config["models"])
    ]
    expanded = {}
    for position, entry in enumerate(declared):
        variants = entry["decoding"] if isinstance(entry["decoding"], list) else [entry["decoding"]]
        for variant in variants:
            key = f"configurations[{position}]"
            if entry["model"] not in config["models"]:
                raise ConfigError(
                    f"config key {key}.model: model {entry['model']!r} is not defined under "
                    f"models (defined: {sorted(config['models'])})"
                )
            if variant not in config["decoding"]:
                raise ConfigError(
                    f"config key {key}.decoding: variant {variant!r} is not defined under "
                    f"decoding (defined: {sorted(config['decoding'])})"
                )
            settings = config["decoding"][variant]
            expanded[configuration_id(entry["model"], variant)] = {
                "model": entry["model"],
                "decoding": variant,
                "temperature": float(settings["temperature"]),
                "top_p": float(settings["top_p"]),
                "max_new_tokens": int(settings["max_new_tokens"]),
                "passes": int(settings["passes"]),
                "system_prompt": settings.get("system_prompt"),
            }
    return dict(sorted(expanded.items()))


def check_study(config: dict) -> None:
    """Raise ConfigError for a config that the schema accepts but the study cannot run."""
    for section in ("models", "decoding"):
        for name in config[section]:
            if not NAME_PATTERN.match(name):
                raise ConfigError(
                    f"config key {section}.{name}: names may contain only lowercase letters, "
                    "digits, '.' and '-', because they become file and configuration names"
                )

    for name, model in config["models"].items():
        _check_prompt_format(name, model)

    for name, settings in config["decoding"].items():
        if settings["temperature"] == 0 and settings["passes"] != 1:
            raise ConfigError(
                f"config key decoding.{name}.passes: greedy decoding (temperature 0) gives the "
                f"same text on every pass; set passes: 1 instead of {settings['passes']}"
            )

    languages = config["languages"]
    if len(set(languages)) != len(languages):
        raise ConfigError(f"config key languages: duplicate entries in {languages}")
    if config["reference_language"] not in languages:
        raise ConfigError(
            f"config key reference_language: {config['reference_language']!r} is not in "
            f"languages {languages}; the IRT model needs its reference language"
        )
    check_languages(config)

    configurations(config)


def _check_prompt_format(name: str, model: dict) -> None:
    if model.get("backend") == "openai":
        _check_api_model(name, model)
        return

    try:
        embedded = embedded_model(model["source"])
    except ModelError as error:
        raise ConfigError(f"config key models.{name}.source: {error}") from error
    if model["prompt_format"] == "chat" and embedded is not None and not embedded.has_chat_template:
        raise ConfigError(
            f"config key models.{name}.prompt_format: {embedded.description} has no chat "
            "template, so it cannot be used as a chat model. Either set prompt_format: raw "
            "(with a raw_template such as 'User: {prompt}\\nAssistant:'), or use a model "
            "whose tokenizer has a chat template."
        )
    if model["prompt_format"] == "raw" and "{prompt}" not in model["raw_template"]:
        raise ConfigError(
            f"config key models.{name}.raw_template: {model['raw_template']!r} has no "
            "'{prompt}' placeholder for the prompt text"
        )


def _check_api_model(name: str, model: dict) -> None:
    """Check an API model: it is sent chat messages, and its API key variable must be set."""
    from xlsafety.backends import missing_key_message

    if model.get("prompt_format", "chat") != "chat":
        raise ConfigError(
            f"config key models.{name}.prompt_format: an openai model is sent chat messages, "
            f"so set prompt_format: chat instead of {model['prompt_format']!r}"
        )
    variable = model.get("api_key_env")
    if variable and not os.environ.get(variable):
        raise ConfigError(missing_key_message(name, variable))


def fill_defaults(config, schema: dict):
    """Fill schema defaults into `config`, including entries of name-keyed maps such as models.

    Snakemake's validate() fills the defaults of fixed `properties` only. The
    models and decoding maps are keyed by user-chosen names, so their entries
    are filled here from the schema's `additionalProperties`.
    """
    if not isinstance(config, dict) or schema.get("type") != "object":
        return config
    for key, subschema in schema.get("properties", {}).items():
        if key not in config and "default" in subschema:
            config[key] = _copy(subschema["default"])
        if key in config:
            fill_defaults(config[key], subschema)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in set(config) - set(schema.get("properties", {})):
            fill_defaults(config[key], extra)
    return config


def _copy(value):
    import copy

    return copy.deepcopy(value)


def coerce_command_line_values(config, schema: dict):
    """Convert strings to the numbers, booleans or nulls that the schema expects, in place.

    Snakemake parses nested `--config` values such as
    `dataset={source: x.csv, prompt_limit: 12}` with YAML's base loader, which
    leaves every scalar a string. A key whose schema does not allow strings
    gets its typed value back here, before validation.
    """
    if isinstance(config, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in config.items():
            subschema = properties.get(key, extra if isinstance(extra, dict) else None)
            if subschema is not None:
                config[key] = coerce_command_line_values(value, subschema)
        return config
    if isinstance(config, list):
        items = schema.get("items", {})
        return [coerce_command_line_values(value, items) for value in config]
    if isinstance(config, str):
        return _coerce_scalar(config, schema)
    return config


def _coerce_scalar(value: str, schema: dict):
    allowed = schema.get("type", [])
    allowed = [allowed] if isinstance(allowed, str) else allowed
    if not allowed or "string" in allowed:
        return value
    if "null" in allowed and value in ("null", "~", ""):
        return None
    if "boolean" in allowed and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if "integer" in allowed and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if "number" in allowed:
        try:
            return float(value)
        except ValueError:
            return value
    return value
