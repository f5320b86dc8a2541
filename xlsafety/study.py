"""The study as declared in the workflow config: models, decoding variants, configurations.

The JSON Schema in `config/schema/config.schema.yaml` checks types and fills
defaults. `check_study` adds the checks that a schema cannot express, so a bad
config is rejected before any job runs, with the key path and the fix.
"""

import json
import os
import re
from pathlib import Path

from xlsafety.dataset import is_url, language_prompts, read_dataset, select_prompt_ids
from xlsafety.errors import ConfigError, DatasetError, ModelError
from xlsafety.judges.refusal import check_judge_languages
from xlsafety.judges.settings import check_judges
from xlsafety.models import embedded_model
from xlsafety.sources import check_language_list, check_languages_known
from xlsafety.translate.settings import check_languages, is_translated

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
    if config.get("source", {}).get("kind", "generate") != "generate":
        # Simulated and imported data need no models, decoding variants, judges or prompt dataset.
        check_languages_known(config)
        return

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

    check_language_list(config)
    check_languages(config)
    check_judges(config)
    check_judge_languages(config)

    configurations(config)
    check_local_dataset(config)


def check_local_dataset(config: dict) -> None:
    """Validate a dataset given as a local file, and the prompts the study uses, before any job runs.

    The embedded dataset is tested with the package. A downloaded dataset is
    checked by the prompts jobs, which run before any generation job.
    """
    source = config["dataset"]["source"]
    if source in ("embedded", "multijail") or is_url(source):
        return
    if not Path(source).is_file():
        raise ConfigError(
            f"config key dataset.source: file {source!r} not found (relative paths start at the "
            "working directory); give the path of a local CSV, a URL, 'multijail' or 'embedded'"
        )
    try:
        frame = read_dataset(source)
        ids = select_prompt_ids(frame, config["dataset"]["prompt_limit"])
        for language in config["languages"]:
            if not is_translated(config, language):
                language_prompts(frame, language, ids, source)
    except DatasetError as error:
        raise ConfigError(f"config key dataset.source: {error}") from error


def _check_prompt_format(name: str, model: dict) -> None:
    if model.get("backend") == "openai":
        _check_api_model(name, model)
        return

    try:
        embedded = embedded_model(model["source"])
    except ModelError as error:
        raise ConfigError(f"config key models.{name}.source: {error}") from error
    if embedded is None:
        check_local_model_source(name, model["source"])
    has_template = embedded.has_chat_template if embedded is not None else local_chat_template(model["source"])
    if model["prompt_format"] == "chat" and has_template is False:
        described = embedded.description if embedded is not None else model["source"]
        raise ConfigError(
            f"config key models.{name}.prompt_format: {described} has no chat "
            "template, so it cannot be used as a chat model. Either set prompt_format: raw "
            "(with a raw_template such as 'User: {prompt}\\nAssistant:'), or use a model "
            "whose tokenizer has a chat template."
        )
    if model["prompt_format"] == "raw" and "{prompt}" not in model["raw_template"]:
        raise ConfigError(
            f"config key models.{name}.raw_template: {model['raw_template']!r} has no "
            "'{prompt}' placeholder for the prompt text"
        )


def check_local_model_source(name: str, source: str) -> None:
    """Raise ConfigError when a model source written as a local path does not exist.

    A GGUF file name, or a path that starts with `/`, `.` or `~`, can only be
    local. Any other missing source may be a hub id such as
    `HuggingFaceTB/SmolLM2-135M-Instruct`, which the model's preparation job
    downloads.
    """
    looks_local = source.endswith(".gguf") or source.startswith(("/", ".", "~"))
    path = Path(source).expanduser()
    if looks_local and not path.exists():
        raise ConfigError(
            f"config key models.{name}.source: {source!r} not found (relative paths start at the "
            "working directory); give the path of a GGUF file or a checkpoint folder, a hub id, "
            "or an embedded model such as 'embedded:smollm2-135m-instruct'"
        )


def config_origin(files: list, command_line: dict | None) -> str:
    """Name the config files, and any --config values, that a config error comes from."""
    origin = f"config file {', '.join(str(path) for path in files)}" if files else "no config file"
    if command_line:
        origin += f" with --config {', '.join(sorted(command_line))}"
    return origin


def local_chat_template(source: str) -> bool | None:
    """Tell whether a local model folder or GGUF file has a chat template, or None when unknown.

    NOTE: a hub id is not looked up before the run, so a hub model without a
    template is reported by its generation job instead.
    """
    path = Path(source)
    if path.is_dir():
        if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
            return True
        config_file = path / "tokenizer_config.json"
        if not config_file.is_file():
            return None
        return bool(json.loads(config_file.read_text(encoding="utf-8")).get("chat_template"))
    if path.is_file() and path.suffix == ".gguf":
        import gguf

        return "tokenizer.chat_template" in gguf.GGUFReader(str(path)).fields
    return None


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


def validate_config(config: dict, schema: dict) -> None:
    """Check `config` against the JSON schema, raising one ConfigError that lists each invalid key.

    Each line names the key path, such as `decoding.greedy.passes`, the problem
    and the key's description from the schema. Snakemake's own validation
    message prints the whole subschema instead.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda error: [str(part) for part in error.absolute_path])
    if not errors:
        return
    lines = [_schema_error_line(error) for error in errors[:MAX_REPORTED_ERRORS]]
    if len(errors) > MAX_REPORTED_ERRORS:
        lines.append(f"... and {len(errors) - MAX_REPORTED_ERRORS} more")
    raise ConfigError("invalid config:\n" + "\n".join(f"- {line}" for line in lines))


MAX_REPORTED_ERRORS = 10


def key_path(parts) -> str:
    """Write a path of keys and list positions as `configurations[0].model`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _schema_error_line(error) -> str:
    path = key_path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        return _unknown_keys_line(path, error)

    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    message = error.message
    if error.validator in ("oneOf", "anyOf"):
        # jsonschema's message here is "is not valid under any of the given schemas", and the
        # description names the valid values.
        message = f"{error.instance!r} is not a valid value"
    if path.endswith(".api_key_env") and error.validator == "pattern":
        # A key pasted here in place of a variable name must not be printed to the terminal or a log.
        message = "the value is not an environment variable name (is it the key itself?)"
    line = f"config key {path}: {message}"
    return f"{line} ({' '.join(description.split())})" if description else line


def _unknown_keys_line(path: str, error) -> str:
    import difflib

    allowed = sorted(error.schema.get("properties", {}))
    unknown = sorted(set(error.instance) - set(allowed))
    guesses = {name: difflib.get_close_matches(name, allowed, n=1, cutoff=0.8) for name in unknown}
    hints = "".join(f" Did you mean {found[0]!r} for {name!r}?" for name, found in guesses.items() if found)
    where = "config: unknown top-level keys" if path == "(top level)" else f"config key {path}: unknown keys"
    return f"{where} {unknown}.{hints} Allowed keys: {allowed}"


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
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        return _coerce_to_branch(value, branches)
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


def _coerce_to_branch(value: str, branches: list[dict]):
    """Return `value` as the first branch of a oneOf or anyOf takes it: as it is when a string branch accepts it."""
    for branch in branches:
        if branch.get("type") == "string" and value in branch.get("enum", [value]):
            return value
    for branch in branches:
        coerced = _coerce_scalar(value, branch)
        if coerced is not value:
            return coerced
    return value
