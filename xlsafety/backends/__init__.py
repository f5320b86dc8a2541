"""Generation backends, registered by name as in a model's `backend` config key.

Each backend lives in its own module and is created by a factory registered
here. A factory imports its module only when called, so that a job using an
API endpoint never imports torch, and a local model job never imports httpx.

A backend is an object with a `model_identity` string and a `generate` method
that takes the prompts of one language and a `GenerationJob`, and returns the
rows of the GENERATIONS table (`xlsafety.tables`).
"""

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from xlsafety.checkpoint import Checkpoint
from xlsafety.errors import ConfigError
from xlsafety.generate import Decoding, PromptFormat

# How to install the vllm backend's engine, in its error and in the start-up warning.
VLLM_INSTALL_HINT = "pip install -e '.[vllm]'"

# Matches no configuration id, for a backend that no model of the study uses.
NO_CONFIGURATION = "(?!)"

# Backends that run a model prepared under results/models/ on the job's own machine.
LOCAL_BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class GenerationJob:
    """The work of one generation job: every pass of one configuration in one language."""

    configuration: str
    """Configuration id, such as `smollm2-135m_greedy`, which is part of every row seed."""

    model_name: str
    """The model's key under `models:` in the config, named in error messages."""

    decoding: Decoding
    """Sampling settings, passes and system prompt."""

    prompt_format: PromptFormat
    """The rule that turns a dataset prompt into the text or messages sent to the model."""

    study_seed: int
    """The study seed from which every row seed is derived."""

    checkpoint: Checkpoint | None = None
    """The checkpoint that saves finished rows as they come, so that a killed job resumes."""


class Backend(Protocol):
    """The interface that the generate step uses."""

    model_identity: str

    def generate(self, prompts: pd.DataFrame, job: GenerationJob) -> pd.DataFrame: ...


_FACTORIES: dict[str, Callable[..., Backend]] = {}


def register(name: str):
    """Register a backend factory under `name`, the value of a model's `backend` key."""

    def decorate(factory: Callable[..., Backend]) -> Callable[..., Backend]:
        _FACTORIES[name] = factory
        return factory

    return decorate


def create_backend(name: str, model_key: str, settings: dict, **resources) -> Backend:
    """Create the backend `name` for the model `model_key` with its config `settings`.

    `resources` are what the job provides, such as the prepared model folder
    and thread count of a local model.
    """
    if name not in _FACTORIES:
        raise ConfigError(
            f"config key models.{model_key}.backend: unknown backend {name!r}; "
            f"use one of {sorted(_FACTORIES)}"
        )
    return _FACTORIES[name](model_key, settings, **resources)


def backend_names() -> list[str]:
    """Return the names of the registered backends."""
    return sorted(_FACTORIES)


def configuration_pattern(config: dict, *backends: str) -> str:
    """Return a regular expression that matches the configuration ids whose model uses one of `backends`.

    The workflow has one generate rule per kind of job (local model or API),
    and this pattern restricts each rule to its own configurations.
    """
    names = sorted(name for name, model in config["models"].items() if model["backend"] in backends)
    if not names:
        return NO_CONFIGURATION
    models = "|".join(re.escape(name) for name in names)
    return f"(?:{models})_[a-z0-9][a-z0-9.-]*"


def missing_key_message(model_key: str, variable: str) -> str:
    """Explain a missing API key variable, both at workflow start and in a job."""
    return (
        f"config key models.{model_key}.api_key_env: the environment variable {variable!r} is "
        "not set or empty. Export it with the endpoint's API key before running the workflow, "
        "or set api_key_env: null for an endpoint that needs no key."
    )


def endpoint_of(config: dict, model_key: str) -> dict:
    """Return the API settings that determine a model's rows: backend, endpoint and model name.

    They become params of the API generate rule, so that changing them makes
    Snakemake redo the model's generations. Retry and concurrency settings are
    left out on purpose, because they do not change the text a model returns.
    """
    model = config["models"][model_key]
    # A trailing slash names the same API root, so it must not look like a new endpoint.
    return {"backend": model["backend"], "model": model["model"], "base_url": model["base_url"].rstrip("/")}


def api_runtime_minutes(config: dict, model_key: str) -> int:
    """Return the runtime in minutes to ask a scheduler for: the model's time budget plus 10 minutes."""
    return 10 + int(config["models"][model_key]["time_budget_s"]) // 60


@register("transformers")
def _transformers(model_key: str, settings: dict, *, model_dir: str, threads: int, batch_size: int | str,
                  device: str = "auto", dtype: str = "auto") -> Backend:
    from xlsafety.backends.transformers import TransformersBackend

    return TransformersBackend.load(model_dir, threads=threads, batch_size=batch_size, device=device, dtype=dtype)


@register("openai")
def _openai(model_key: str, settings: dict, **_unused) -> Backend:
    from xlsafety.backends.openai_chat import OpenAIChatBackend, OpenAIChatConfig

    return OpenAIChatBackend(OpenAIChatConfig.from_settings(model_key, settings))


def missing_engine_warnings(config: dict) -> list[str]:
    """Return a warning for each model whose backend needs a package that this Python cannot import.

    The workflow only warns: on a cluster, the jobs may run in an environment
    that has the package while the submitting machine does not.
    """
    models = sorted(key for key, model in config["models"].items() if model["backend"] == "vllm")
    if not models or importlib.util.find_spec("vllm") is not None:
        return []
    return [
        f"models.{key}.backend: vllm is not installed here, so its generation jobs will fail unless they "
        f"run where it is ({VLLM_INSTALL_HINT} on a machine with a CUDA GPU), or set backend: transformers"
        for key in models
    ]


@register("vllm")
def _vllm(model_key: str, settings: dict, *, model_dir: str, dtype: str = "auto", **_unused) -> Backend:
    from xlsafety.backends.vllm import VllmBackend

    return VllmBackend.load(model_dir, dtype=dtype)
