"""The `dataset` backend: the language is a column of the dataset, so nothing is translated."""

import logging
from pathlib import Path

import pandas as pd

from xlsafety.dataset import language_prompts, read_dataset, select_prompt_ids
from xlsafety.translate.registry import Backend, add_backend

log = logging.getLogger(__name__)

ORIGIN = "dataset"

add_backend(
    Backend(
        name="dataset",
        description="the prompts are the dataset column of the language",
        factory=None,
        model_kind=None,
    )
)


def dataset_prompts(path: str | Path, language: str, prompt_limit: int | None) -> pd.DataFrame:
    """Return the prompts table of a language that is a column of the dataset at `path`."""
    frame = read_dataset(path)
    ids = select_prompt_ids(frame, prompt_limit)
    prompts = language_prompts(frame, language, ids, path)
    prompts["origin"] = ORIGIN
    log.info("%s: %d of %d prompts in %s", path, len(prompts), len(frame), language)
    return prompts
