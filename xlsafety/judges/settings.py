"""Judges as the config declares them: checks at start, rule inputs and params, and building a judge in a job.

`judges:` lists the judges that score every response. `refusal` is built in.
Every other name is defined under `judge_definitions:`, as a `rubric` judge
(a model from `models:` applying the 0..5 rubric) or a `cascade` (the refusal
judge, then a rubric judge for what is not a clear refusal).

A judge runs in one of three rules, by what it needs. `judge` runs the
refusal judge, which is cheap and bundled on SLURM. `judge_api` runs judges
whose models are all API models, with one thread and a runtime that covers
the time budget. `judge_local` runs judges that load a local model, whose
prepared folders are inputs.
"""

import re
from pathlib import Path

from xlsafety.errors import ConfigError
from xlsafety.judges.decision import BACK_TRANSLATED, TEXT_MODES

REFUSAL = "refusal"
BUILT_IN = (REFUSAL,)
KINDS = ("rubric", "cascade")

# Matches no judge name, for a rule that no judge of the study uses.
NO_JUDGE = "(?!)"

RULE_REFUSAL = "refusal"
RULE_API = "api"
RULE_LOCAL = "local"

DEFAULT_RETRIES = 2
DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_BATCH_SIZE = 8
DEFAULT_TRANSLATION_TOKENS = 256


def definitions(config: dict) -> dict[str, dict]:
    """Return the judge definitions of the config, by name."""
    return config.get("judge_definitions") or {}


def check_judges(config: dict) -> None:
    """Raise ConfigError for a judge list or definition that names something undefined."""
    defined = definitions(config)
    for name in defined:
        if name in BUILT_IN:
            raise ConfigError(
                f"config key judge_definitions.{name}: {name!r} is the built-in refusal judge; "
                "give the definition another name"
            )
        _check_definition(config, name, defined[name])

    for position, name in enumerate(config["judges"]):
        if name not in BUILT_IN and name not in defined:
            raise ConfigError(
                f"config key judges[{position}]: judge {name!r} is neither built in ({list(BUILT_IN)}) "
                f"nor defined under judge_definitions (defined: {sorted(defined)})"
            )

    # The phrase lists of the refusal judge, which cascades run too, are checked by
    # xlsafety.judges.refusal.check_judge_languages.


def _check_definition(config: dict, name: str, definition: dict) -> None:
    key = f"judge_definitions.{name}"
    kind = definition.get("kind")
    if kind == "cascade":
        rubric = definition.get("rubric")
        if definitions(config).get(rubric, {}).get("kind") != "rubric":
            rubrics = sorted(other for other, entry in definitions(config).items() if entry.get("kind") == "rubric")
            raise ConfigError(
                f"config key {key}.rubric: {rubric!r} is not a rubric judge under judge_definitions "
                f"(rubric judges: {rubrics}); a cascade needs one for the responses that are not refusals"
            )
        return

    _check_model(config, f"{key}.model", definition.get("model"))
    if definition.get("template") is not None:
        from xlsafety.judges.rubric import check_template

        check_template(definition["template"], f"{key}.template")
    mode = definition.get("mode", TEXT_MODES[0])
    translation = definition.get("back_translation")
    if mode == BACK_TRANSLATED and not translation:
        raise ConfigError(
            f"config key {key}.back_translation: mode back_translated needs a translation backend, "
            "for example back_translation: {backend: llm, model: <a name under models>}"
        )
    if mode == BACK_TRANSLATED:
        _check_translation(config, f"{key}.back_translation", translation)


def _check_model(config: dict, key: str, model: str | None) -> None:
    if model not in config["models"]:
        raise ConfigError(
            f"config key {key}: model {model!r} is not defined under models "
            f"(defined: {sorted(config['models'])}); the judge model is one of the config's models"
        )


def _check_translation(config: dict, key: str, translation: dict) -> None:
    backend = translation.get("backend")
    if translation.get("template") is not None:
        from xlsafety.translate.llm import check_template

        check_template(translation["template"], f"{key}.template")
    if backend == "llm":
        _check_model(config, f"{key}.model", translation.get("model"))
    elif not translation.get("model"):
        raise ConfigError(f"config key {key}.model: the seq2seq backend needs a model folder or hub id")


def rubric_definition(config: dict, name: str) -> dict | None:
    """Return the rubric definition that judge `name` uses (its own, or its cascade's), or None."""
    definition = definitions(config).get(name)
    if definition is None:
        return None
    if definition["kind"] == "cascade":
        return definitions(config)[definition["rubric"]]
    return definition


def local_models(config: dict, name: str) -> dict[str, str]:
    """Return the local models (under `models:`) that judge `name` loads, by role: `model`, `translation_model`."""
    rubric = rubric_definition(config, name)
    if rubric is None:
        return {}
    models = {"model": rubric["model"]}
    translation = rubric.get("back_translation") or {}
    if rubric.get("mode") == BACK_TRANSLATED and translation.get("backend") == "llm":
        models["translation_model"] = translation["model"]
    return {role: model for role, model in models.items() if config["models"][model]["backend"] != "openai"}


def rule_of(config: dict, name: str) -> str | None:
    """Return which judge rule runs judge `name`: refusal, api or local; None for an undefined judge.

    Judgments of simulated or imported data come from their own rules, under judge
    names that no judge rule runs.
    """
    if name in BUILT_IN:
        return RULE_REFUSAL
    rubric = rubric_definition(config, name)
    if rubric is None:
        return None
    translation = rubric.get("back_translation") or {}
    loads_seq2seq = rubric.get("mode") == BACK_TRANSLATED and translation.get("backend") == "seq2seq"
    return RULE_LOCAL if local_models(config, name) or loads_seq2seq else RULE_API


def judge_pattern(config: dict, rule: str) -> str:
    """Return a regular expression matching the judge names that run in `rule`."""
    names = sorted(name for name in config["judges"] if rule_of(config, name) == rule)
    return "|".join(re.escape(name) for name in names) if names else NO_JUDGE


def judge_inputs(config: dict, name: str) -> dict[str, str]:
    """Return the prepared model folders that the job of judge `name` reads, by role."""
    return {role: f"results/models/{model}" for role, model in local_models(config, name).items()}


def judge_params(config: dict, name: str) -> dict:
    """Return what determines the rows of judge `name`, so that changing it reruns the judge.

    Endpoint retry, concurrency and time settings are left out, because they do
    not change the answers. The models' API key variables are left out too.
    """
    if name in BUILT_IN:
        return {"kind": name}
    definition = dict(definitions(config)[name])
    rubric = rubric_definition(config, name)
    if definition["kind"] == "cascade":
        # The schema fills rubric defaults into every entry; a cascade uses only these two keys.
        definition = {"kind": "cascade", "rubric": definition["rubric"], "rubric_definition": dict(rubric)}
    params = {"definition": definition, "seed": config["seed"], "models": {}}
    translation = rubric.get("back_translation") or {}
    for model in {rubric["model"], translation.get("model") if translation.get("backend") == "llm" else None} - {None}:
        params["models"][model] = _model_identity(config["models"][model])
    return params


def _model_identity(model: dict) -> dict:
    keys = ("backend", "model", "base_url") if model["backend"] == "openai" else (
        "backend", "source", "prompt_format", "raw_template", "stop_strings")
    return {key: model.get(key) for key in keys}


def api_runtime_minutes(config: dict, name: str) -> int:
    """Return the runtime of an API judge job in minutes: the time budget of each request round, plus 10.

    A job sends up to 1 + retries rounds of requests, plus one round of
    translations in back_translated mode, each within the model's time budget.
    """
    rubric = rubric_definition(config, name)
    rounds = 1 + int(rubric.get("retries", DEFAULT_RETRIES))
    budget = float(config["models"][rubric["model"]]["time_budget_s"]) * rounds
    translation = rubric.get("back_translation") or {}
    if rubric.get("mode") == BACK_TRANSLATED and translation.get("backend") == "llm":
        budget += float(config["models"][translation["model"]]["time_budget_s"])
    return 10 + int(budget) // 60


def build_judge(name: str, languages: list[str], config: dict, *, model_dir: str | None = None,
                translation_model_dir: str | None = None, threads: int = 1, checkpoint_folder=None,
                fingerprint: str = ""):
    """Create judge `name` as the config defines it, for responses in `languages`.

    `model_dir` and `translation_model_dir` are the prepared folders of local
    models. With a `checkpoint_folder`, the judge model's answers are saved as
    they come, so that a killed job resumes.
    """
    from xlsafety.judges.refusal import RefusalJudge

    if name == REFUSAL:
        return RefusalJudge(languages)
    definition = definitions(config)[name]
    rubric_name = definition["rubric"] if definition["kind"] == "cascade" else name
    rubric = _build_rubric(rubric_name, languages, config, model_dir=model_dir,
                           translation_model_dir=translation_model_dir, threads=threads,
                           checkpoint_folder=checkpoint_folder, fingerprint=fingerprint)
    if definition["kind"] == "cascade":
        from xlsafety.judges.cascade import CascadeJudge

        return CascadeJudge(name, RefusalJudge(languages), rubric)
    return rubric


def _build_rubric(name: str, languages: list[str], config: dict, *, model_dir, translation_model_dir, threads,
                  checkpoint_folder, fingerprint):
    from xlsafety.judges.rubric import RUBRIC_TEMPLATE, BackendJudgeModel, RubricJudge

    definition = definitions(config)[name]
    model_key = definition["model"]
    backend, prompt_format = _generation_backend(config, model_key, model_dir, threads,
                                                 definition.get("batch_size", DEFAULT_BATCH_SIZE))
    model = BackendJudgeModel(
        backend, judge_name=name, model_key=model_key, prompt_format=prompt_format,
        max_new_tokens=definition.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS), study_seed=config["seed"],
        checkpoint_folder=checkpoint_folder, fingerprint=fingerprint,
    )

    mode = definition.get("mode", TEXT_MODES[0])
    translator, directions = None, {}
    translation = definition.get("back_translation") or {}
    translation_checkpoint = None
    if mode == BACK_TRANSLATED:
        translator = _translator(config, translation, translation_model_dir, threads)
        directions = _directions(config, languages)
        if checkpoint_folder is not None:
            from xlsafety.checkpoint import Checkpoint

            folder = Path(checkpoint_folder)
            translation_checkpoint = Checkpoint(folder.with_name(f"{folder.name}-translations"), fingerprint)
    return RubricJudge(
        name, model, retries=definition.get("retries", DEFAULT_RETRIES),
        template=definition.get("template") or RUBRIC_TEMPLATE, mode=mode, translator=translator,
        directions=directions, translation_batch_size=definition.get("batch_size", DEFAULT_BATCH_SIZE),
        translation_checkpoint=translation_checkpoint,
    )


def _generation_backend(config: dict, model_key: str, model_dir: str | None, threads: int, batch_size: int):
    """Create the generation backend of a model under `models:` and the prompt format it is sent."""
    from xlsafety.backends import create_backend
    from xlsafety.generate import PromptFormat

    settings = config["models"][model_key]
    if settings["backend"] == "openai":
        backend = create_backend("openai", model_key, settings)
    else:
        if model_dir is None:
            raise ConfigError(f"model {model_key}: the judge job got no prepared model folder for this local model")
        backend = create_backend(settings["backend"], model_key, settings, model_dir=model_dir, threads=threads,
                                 batch_size=batch_size)
    prompt_format = PromptFormat(settings.get("prompt_format", "chat"), settings.get("raw_template", "{prompt}"),
                                 tuple(settings.get("stop_strings") or ()))
    return backend, prompt_format


def _translator(config: dict, translation: dict, translation_model_dir: str | None, threads: int):
    """Create the translator of a back_translation entry: a translation stage backend or an API model."""
    from xlsafety.translate import make_translator

    max_new_tokens = translation.get("max_new_tokens", DEFAULT_TRANSLATION_TOKENS)
    if translation["backend"] == "llm" and config["models"][translation["model"]]["backend"] == "openai":
        from xlsafety.judges.rubric import BackendTranslator

        backend, _ = _generation_backend(config, translation["model"], None, threads, 1)
        return BackendTranslator(backend, model_key=translation["model"], max_new_tokens=max_new_tokens,
                                 study_seed=config["seed"], template=translation.get("template"))

    settings = {"max_new_tokens": max_new_tokens, "template": translation.get("template"),
                "stop_strings": translation.get("stop_strings"), "prompt_format": None}
    location = translation["model"]
    if translation["backend"] == "llm":
        settings["prompt_format"] = config["models"][translation["model"]]["prompt_format"]
        location = translation_model_dir
    return make_translator(translation["backend"], settings, location, threads)


def _directions(config: dict, languages: list[str]) -> dict:
    from xlsafety.judges.rubric import ENGLISH, english_direction
    from xlsafety.languages import known_languages

    metadata = known_languages(config.get("language_metadata"))
    return {language: english_direction(language, metadata) for language in languages if language != ENGLISH}
