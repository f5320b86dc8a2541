"""Translating a prompts table: forward, back again, scored, as one table per language."""

import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa

from xlsafety.tables import PROMPTS, write_csv, write_table
from xlsafety.translate.quality import chrf_scores, low_quality
from xlsafety.translate.registry import Direction, Translator, make_translator

log = logging.getLogger(__name__)

# The prompts table's columns, followed by what the quality check needs.
TRANSLATIONS = pa.schema(
    list(PROMPTS)
    + [
        pa.field("source_language", pa.string()),
        pa.field("source_text", pa.string()),
        # The translation translated back into the source language by the same backend.
        pa.field("back_translation", pa.string()),
        # chrF (0..100) of back_translation against source_text.
        pa.field("chrf", pa.float64()),
    ]
)


def translate_in_batches(translator: Translator, texts: list[str], direction: Direction,
                         batch_size: int) -> list[str]:
    """Translate `texts` in batches of `batch_size`, keeping their order."""
    translated: list[str] = []
    for start in range(0, len(texts), batch_size):
        translated.extend(translator.translate(texts[start : start + batch_size], direction))
        log.info("%s -> %s: %d/%d texts done", direction.source, direction.target, len(translated), len(texts))
    return translated


def translate_prompts(source: pd.DataFrame, direction: Direction, forward: Translator, backward: Translator,
                      *, origin: str, batch_size: int) -> pd.DataFrame:
    """Translate the prompts table `source` in `direction` and score each prompt by back-translation.

    Returns a TRANSLATIONS table with one row per source prompt, in id order.
    """
    source = source.sort_values("id").reset_index(drop=True)
    texts = source["text"].tolist()

    translated = translate_in_batches(forward, texts, direction, batch_size)
    back = translate_in_batches(backward, translated, direction.reversed(), batch_size)
    scores = chrf_scores(back, texts)

    empty = sum(1 for text in translated if not text.strip())
    if empty:
        log.warning("%d of %d translations into %s are empty; they are listed in the quality file",
                    empty, len(texts), direction.target)

    return pd.DataFrame(
        {
            "id": source["id"].astype("int64"),
            "language": direction.target,
            "text": translated,
            "tags": source["tags"],
            "source": source["source"],
            "origin": origin,
            "source_language": direction.source,
            "source_text": texts,
            "back_translation": back,
            "chrf": scores,
        }
    )


def run_translation(source: pd.DataFrame, settings: dict, *, model: str, back_model: str | None, threads: int,
                    translations_path: str | Path, quality_path: str | Path) -> pd.DataFrame:
    """Translate the reference prompts `source` as `settings` (from translation_settings) say.

    `model` and `back_model` are where to load the models from: a prepared
    model folder for the llm backend, a folder or hub id for seq2seq. Writes
    the TRANSLATIONS table and the CSV of doubtful prompts, and returns the table.
    """
    name = settings["backend"]
    forward = make_translator(name, settings, model, threads)
    backward = make_translator(name, settings, back_model, threads) if back_model else forward

    translations = translate_prompts(
        source,
        Direction(**settings["direction"]),
        forward,
        backward,
        origin=settings["origin"],
        batch_size=settings["batch_size"],
    )
    flagged = low_quality(translations, settings["chrf_threshold"])

    write_table(translations, translations_path, TRANSLATIONS)
    write_csv(flagged, quality_path)
    log.info("%s: mean back-translation chrF %.1f; %d of %d prompts listed in %s", settings["origin"],
             translations["chrf"].mean(), len(flagged), len(translations), quality_path)
    return translations
