"""Uncertainty of the safe/unsafe outcome across the repeated passes of a cell."""

import logging

import numpy as np
import pandas as pd

from xlsafety.analyses.common import RESOURCE_ORDER, resource_level


log = logging.getLogger(__name__)


def binary_entropy(share) -> np.ndarray:
    """Return the entropy in bits of a Bernoulli outcome with probability `share` (0 at 0 and 1, 1 at 0.5)."""
    share = np.asarray(share, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = -(share * np.log2(share) + (1 - share) * np.log2(1 - share))
    return np.where((share == 0) | (share == 1), 0.0, terms)


def cell_entropy(cells: pd.DataFrame, min_valid: int = 2) -> pd.DataFrame:
    """Return the entropy of the safe share of each cell with at least `min_valid` valid passes.

    A cell whose passes all agree has entropy 0, and one that is safe in half of
    its passes has entropy 1 bit. Cells with fewer valid passes are dropped
    because a single pass has no spread to measure.
    """
    usable = cells[cells["n_valid"] >= min_valid]
    if usable.empty:
        log.warning("no cell has %d or more valid passes, so there is no entropy to report", min_valid)
    share = usable["n_safe"] / usable["n_valid"]
    return usable[["configuration", "id", "language", "n_valid"]].assign(
        resource=usable["language"].map(resource_level), entropy=binary_entropy(share)
    )


def mean_entropy(entropy: pd.DataFrame, key: str) -> pd.DataFrame:
    """Average cell entropy by `key` (language or resource), with the number of cells and the share above 0."""
    flagged = entropy.assign(uncertain=entropy["entropy"] > 0)
    summary = (
        flagged.groupby(key, sort=False)
        .agg(cells=("entropy", "size"), mean_entropy=("entropy", "mean"), share_uncertain=("uncertain", "mean"))
        .reset_index()
    )
    return summary.sort_values(key, key=_display_order).reset_index(drop=True)


def _display_order(values: pd.Series) -> pd.Series:
    """Order resource levels from reference to low, and anything else alphabetically after them."""
    rank = {level: position for position, level in enumerate(RESOURCE_ORDER)}
    return values.map(lambda value: f"{rank.get(value, len(rank))}:{value}")
