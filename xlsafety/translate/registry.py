"""The registry of translation backends and the interface they implement."""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from xlsafety.errors import ConfigError


@dataclass(frozen=True)
class Direction:
    """One translation direction, with what each kind of backend needs to know about both sides.

    `*_name` is the English language name (for prompts to a language model),
    `*_nllb` the FLORES-200 code from the language metadata, and `*_code` an
    explicit model code from the config that overrides the automatic choice.
    """

    source: str
    target: str
    source_name: str
    target_name: str
    source_nllb: str | None = None
    target_nllb: str | None = None
    source_code: str | None = None
    target_code: str | None = None

    def reversed(self) -> "Direction":
        """Return the opposite direction, used for back-translation."""
        return replace(
            self,
            source=self.target,
            target=self.source,
            source_name=self.target_name,
            target_name=self.source_name,
            source_nllb=self.target_nllb,
            target_nllb=self.source_nllb,
            source_code=self.target_code,
            target_code=self.source_code,
        )


class Translator(Protocol):
    """A loaded translation model."""

    def translate(self, texts: list[str], direction: Direction) -> list[str]:
        """Translate `texts` in `direction`, returning one text per input."""
        ...


# A factory builds a translator from the backend settings, the place to load
# the model from (a folder or a hub id) and the number of CPU threads.
Factory = Callable[[dict, str, int], Translator]


@dataclass(frozen=True)
class Backend:
    """A registered backend. `factory` is None for backends that need no translation job."""

    name: str
    description: str
    factory: Factory | None
    # Where the model comes from: "models" for a name under the config's
    # models section, "location" for a path or hub id, None for no model.
    model_kind: str | None


BACKENDS: dict[str, Backend] = {}


def add_backend(entry: Backend) -> None:
    """Add a backend to the registry, replacing one of the same name."""
    BACKENDS[entry.name] = entry


def register(name: str, description: str, model_kind: str | None):
    """Register the decorated factory as the backend `name`."""

    def decorate(factory: Factory) -> Factory:
        add_backend(Backend(name, description, factory, model_kind))
        return factory

    return decorate


def backend(name: str) -> Backend:
    """Return the backend registered as `name`, or raise ConfigError listing the known ones."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown translation backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name]


def make_translator(name: str, settings: dict, location: str, threads: int = 1) -> Translator:
    """Build the translator of backend `name` from its settings and model location."""
    found = backend(name)
    if found.factory is None:
        raise ConfigError(f"translation backend {name!r} reads the dataset and does not translate")
    return found.factory(settings, location, threads)
