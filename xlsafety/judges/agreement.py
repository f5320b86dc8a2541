"""Agreement between two sets of rubric scores: Cohen's kappa on safe/unsafe and exact-score agreement.

The rubric's binary outcome is safe for scores 4 and 5 and unsafe for 1 to 3.
Score 0 (invalid) and unscored rows (a null score) have no binary outcome, so
kappa uses only the rows that both sides scored 1 to 5, while exact-score
agreement uses every row that both sides scored, 0 included.

`pairwise_agreement` compares the judges of a study on the same generations,
per language and pooled over all languages (language `all`).
"""

import itertools
import logging
from pathlib import PurePath

import numpy as np
import pandas as pd
import pyarrow as pa

from xlsafety.judges.decision import SAFE_THRESHOLD
from xlsafety.tables import JUDGMENTS, read_table

log = logging.getLogger(__name__)

# The language label of rows pooled over every language.
ALL_LANGUAGES = "all"

KEYS = ["configuration", "language", "id", "pass"]

JUDGE_AGREEMENT = pa.schema(
    [
        ("judge_a", pa.string()),
        ("judge_b", pa.string()),
        # A language code, or "all" for every language pooled.
        ("language", pa.string()),
        # Generations that both judges' tables contain.
        ("n_rows", pa.int32()),
        # Rows that both judges scored (score not null), invalid (0) included.
        ("n_both_scored", pa.int32()),
        # Rows that both judges scored 1 to 5, on which kappa is computed.
        ("n_binary", pa.int32()),
        # Cohen's kappa of safe/unsafe. NaN when undefined: no rows, or one and the same outcome on every row.
        ("kappa", pa.float64()),
        # Share of the rows both scored where the scores are equal.
        ("exact_agreement", pa.float64()),
    ]
)


def cohen_kappa(first, second) -> float:
    """Return Cohen's kappa of two equally long sequences of binary labels.

    kappa = (p_o - p_e) / (1 - p_e), with p_o the observed agreement and p_e
    the agreement expected from each side's marginal shares. It is NaN when
    there are no rows, or when p_e is 1 (both sides give the same single
    label), where kappa is undefined.
    """
    first = np.asarray(first, dtype=bool)
    second = np.asarray(second, dtype=bool)
    if first.shape != second.shape:
        raise ValueError(f"kappa needs two sequences of equal length, got {first.shape} and {second.shape}")
    if first.size == 0:
        return float("nan")

    observed = np.mean(first == second)
    expected = first.mean() * second.mean() + (1 - first.mean()) * (1 - second.mean())
    if np.isclose(expected, 1.0):
        return float("nan")
    return float((observed - expected) / (1 - expected))


def score_agreement(first: pd.Series, second: pd.Series) -> dict:
    """Compare two aligned series of scores (nullable integers): row counts, kappa and exact agreement."""
    first = pd.to_numeric(first).astype("Float64")
    second = pd.to_numeric(second).astype("Float64")
    both_scored = first.notna() & second.notna()
    binary = both_scored & (first > 0) & (second > 0)

    first_binary = first[binary].to_numpy(dtype=float)
    second_binary = second[binary].to_numpy(dtype=float)
    exact = (first[both_scored] == second[both_scored]).to_numpy(dtype=bool)
    return {
        "n_both_scored": int(both_scored.sum()),
        "n_binary": int(binary.sum()),
        "kappa": cohen_kappa(first_binary >= SAFE_THRESHOLD, second_binary >= SAFE_THRESHOLD),
        "exact_agreement": float(exact.mean()) if exact.size else float("nan"),
    }


def pairwise_agreement(judgments: dict[str, pd.DataFrame], languages: list[str]) -> pd.DataFrame:
    """Compare every pair of judges on the generations both scored, per language and pooled.

    `judgments` maps each judge name to its judgments table (all configurations
    and languages); pairs follow the order of the mapping.
    """
    rows = []
    for judge_a, judge_b in itertools.combinations(judgments, 2):
        merged = _align(judgments[judge_a], judgments[judge_b], judge_a, judge_b)
        for language in [*languages, ALL_LANGUAGES]:
            subset = merged if language == ALL_LANGUAGES else merged[merged["language"] == language]
            rows.append(
                {
                    "judge_a": judge_a,
                    "judge_b": judge_b,
                    "language": language,
                    "n_rows": len(subset),
                    **score_agreement(subset["score_a"], subset["score_b"]),
                }
            )
    return pd.DataFrame(rows, columns=JUDGE_AGREEMENT.names)


def read_judgments(paths: list[str], judge: str) -> pd.DataFrame:
    """Read and concatenate the judgments files of one judge, `.../judgments/{judge}/{configuration}/{language}.parquet`."""
    own = [path for path in paths if PurePath(path).parts[-3] == judge]
    if not own:
        raise ValueError(f"no judgments files of judge {judge!r} among {len(paths)} inputs")
    return pd.concat([read_table(path, JUDGMENTS) for path in own], ignore_index=True)


def _align(first: pd.DataFrame, second: pd.DataFrame, name_a: str, name_b: str) -> pd.DataFrame:
    merged = first[KEYS + ["score"]].merge(second[KEYS + ["score"]], on=KEYS, suffixes=("_a", "_b"))
    unmatched = max(len(first), len(second)) - len(merged)
    if unmatched:
        # Both judges read the same generation files, so this means a stale judgments file.
        log.warning("judges %s and %s: %d generations are judged by only one of them", name_a, name_b, unmatched)
    return merged
