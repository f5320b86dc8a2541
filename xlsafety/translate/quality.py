"""Translation quality by back-translation: chrF between a prompt and its round trip.

Each translated prompt is translated back into the reference language with
the same backend, and chrF (character n-gram F-score, sacrebleu's default
settings, 0..100) compares the result with the original prompt. A low score
flags a prompt whose translation lost or changed meaning, or a backend that
did not translate at all.

NOTE: a round trip measures both directions at once and rewards a backend that
copies its input unchanged, so a high chrF is necessary but not sufficient for
a good translation. Prompts left mostly in the source language are flagged
separately for that reason, by word overlap, which also flags a correct
translation that keeps many names or loanwords.
"""

import re

import pandas as pd

# A translation sharing at least this share of its words with the source text
# was most likely left in the source language.
COPIED_WORD_SHARE = 0.6

QUALITY_COLUMNS = ["language", "id", "origin", "chrf", "reason", "source_text", "text", "back_translation"]


def chrf_scores(hypotheses: list[str], references: list[str]) -> list[float]:
    """Return the sentence-level chrF of each hypothesis against its reference."""
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    return [
        float(metric.sentence_score(hypothesis, [reference]).score)
        for hypothesis, reference in zip(hypotheses, references, strict=True)
    ]


def copied_share(text: str, source_text: str) -> float:
    """Return the share of the words of `text` that also occur in `source_text`, ignoring case."""
    words = re.findall(r"\w+", text.casefold())
    if not words:
        return 0.0
    source_words = set(re.findall(r"\w+", source_text.casefold()))
    return sum(word in source_words for word in words) / len(words)


def quality_issue(row, threshold: float) -> str | None:
    """Return why a translated prompt is doubtful, or None when it looks fine."""
    if not row["text"].strip():
        return "empty translation"
    copied = copied_share(row["text"], row["source_text"])
    if copied >= COPIED_WORD_SHARE:
        return f"{copied:.0%} of its words are copied from the source text"
    if row["chrf"] < threshold:
        return f"back-translation chrF {row['chrf']:.1f} below {threshold:g}"
    return None


def low_quality(translations: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Return the doubtful prompts of a translation table, lowest chrF first, with the reason."""
    reasons = translations.apply(quality_issue, axis=1, threshold=threshold) if len(translations) else []
    flagged = translations.assign(reason=reasons)
    flagged = flagged[flagged["reason"].notna()].sort_values(["chrf", "id"])
    return flagged[QUALITY_COLUMNS].reset_index(drop=True)
