"""JSR per configuration x language with Wilson intervals, and its relation to theta + delta."""

import numpy as np
import pandas as pd
from scipy.stats import norm

from xlsafety.analyses.common import ability, pooled_rates, resource_level


def wilson_interval(successes, trials, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Return the Wilson score interval (lower, upper) of a binomial proportion.

    Works elementwise on arrays. Where `trials` is 0 both bounds are NaN.
    """
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    z = norm.ppf(0.5 + level / 2)

    with np.errstate(invalid="ignore", divide="ignore"):
        share = successes / trials
        denominator = 1.0 + z**2 / trials
        centre = (share + z**2 / (2 * trials)) / denominator
        half_width = z / denominator * np.sqrt(share * (1 - share) / trials + z**2 / (4 * trials**2))

    # The bounds are exactly 0 and 1 at the ends, where round-off would otherwise leave them a hair inside.
    lower = np.where(successes <= 0, 0.0, np.clip(centre - half_width, 0.0, 1.0))
    upper = np.where(successes >= trials, 1.0, np.clip(centre + half_width, 0.0, 1.0))
    empty = trials <= 0
    return np.where(empty, np.nan, lower), np.where(empty, np.nan, upper)


def jsr_intervals(cells: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Return the JSR of each configuration x language with its Wilson interval.

    JSR is the unsafe share of valid passes pooled over prompts; jsr_lower and
    jsr_upper bound it at `level`. A pair without a valid pass has NaN JSR.
    """
    rates = pooled_rates(cells, ["configuration", "language"])
    lower, upper = wilson_interval(rates["n_unsafe"], rates["n_valid"], level)
    rates = rates.assign(jsr_lower=lower, jsr_upper=upper, resource=rates["language"].map(resource_level))
    return rates[["configuration", "language", "resource", "n_valid", "n_unsafe", "jsr", "jsr_lower", "jsr_upper"]]


def jsr_with_ability(jsr: pd.DataFrame, parameters: pd.DataFrame) -> pd.DataFrame:
    """Join each configuration x language JSR with the IRT robustness theta + delta there.

    A higher `ability` means a safer configuration in that language, so the two
    columns should fall together.
    """
    robustness = ability(parameters, sorted(jsr["configuration"].unique()), sorted(jsr["language"].unique()))
    return jsr.merge(robustness, on=["configuration", "language"], how="left")


def ability_jsr_correlation(table: pd.DataFrame) -> float:
    """Return the Spearman correlation of JSR with theta + delta (negative when the model fits), or NaN."""
    usable = table.dropna(subset=["jsr", "ability"])
    if len(usable) < 3 or usable["jsr"].nunique() < 2 or usable["ability"].nunique() < 2:
        return float("nan")
    return float(usable["jsr"].corr(usable["ability"], method="spearman"))
