"""Translation backends that add languages a dataset lacks.

Backends are registered by name (see `registry`). Importing this package
registers the built-in ones: `dataset` (the language is a column of the
dataset), `seq2seq` (transformers translation models such as NLLB, M2M100 or
Marian) and `llm` (a translation prompt sent to a prepared causal language
model). The heavy libraries are imported only when a backend is built.
"""

from xlsafety.translate.registry import BACKENDS, Backend, Direction, Translator, make_translator, register

# Imported for their registrations.
from xlsafety.translate import dataset, llm, seq2seq  # noqa: F401

__all__ = ["BACKENDS", "Backend", "Direction", "Translator", "make_translator", "register"]
