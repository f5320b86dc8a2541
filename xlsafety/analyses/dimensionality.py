"""Is safety one dimension? Eigenvalues, Yen's Q3 and Kendall's W across configurations.

Configurations play the part of persons and prompts (or prompt x language
items) the part of items. Every statistic needs at least MIN_CONFIGURATIONS
configurations, because a correlation across two configurations is always
+-1. Degenerate inputs give NaN and a logged warning instead of an error.
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2, rankdata

from xlsafety.analyses.common import irt_probability, pooled_rates, prompt_tags

log = logging.getLogger(__name__)

MIN_CONFIGURATIONS = 3


@dataclass
class Scree:
    """Eigenvalues of the prompt correlation matrix, largest first, and the first one's share of their sum."""

    eigenvalues: np.ndarray
    first_share: float


def scree(cells: pd.DataFrame) -> Scree:
    """Return the eigenvalues of the correlation matrix of prompt safe rates across configurations.

    Safe rates are pooled over languages per configuration x prompt. Prompts
    with a missing rate or the same rate in every configuration are dropped,
    because their correlations are undefined. One dominant eigenvalue (a large
    first share) is the pattern of a single robustness dimension.
    """
    rates = pooled_rates(cells, ["configuration", "id"]).pivot(index="configuration", columns="id", values="safe_rate")
    rates = _usable_columns(rates, "prompts")
    if rates is None:
        return Scree(np.array([]), float("nan"))

    correlation = np.corrcoef(rates.to_numpy(dtype=float), rowvar=False)
    eigenvalues = np.sort(np.linalg.eigvalsh(correlation))[::-1]
    # Round-off can leave the zero eigenvalues of a rank-deficient matrix slightly negative.
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    return Scree(eigenvalues, float(eigenvalues[0] / eigenvalues.sum()))


def q3_by_pair_type(cells: pd.DataFrame, parameters: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    """Return Yen's Q3 residual correlations averaged within and between harm categories.

    An item is a (prompt, language) pair, and its residual in a configuration is
    the observed safe share minus the fitted P(safe). Q3 is the correlation of
    two items' residuals across configurations. Pairs are typed as
    `same prompt` (one prompt in two languages), `same category` (two prompts
    sharing a tag) or `different category`. Local independence predicts Q3
    near -1/(items - 1) for every type, so a higher mean within categories
    points to a second, category-specific dimension.
    """
    columns = ["pair_type", "pairs", "mean_q3"]
    residuals = _residual_matrix(cells, parameters)
    residuals = _usable_columns(residuals, "prompt x language items")
    if residuals is None:
        return pd.DataFrame({"pair_type": PAIR_TYPES, "pairs": 0, "mean_q3": np.nan}, columns=columns)

    q3 = np.corrcoef(residuals.to_numpy(dtype=float), rowvar=False)
    first, second = np.triu_indices(q3.shape[0], k=1)
    items = residuals.columns.to_frame(index=False)
    pair_type = _pair_types(items, first, second, prompts)

    pairs = pd.DataFrame({"pair_type": pair_type, "q3": q3[first, second]})
    summary = pairs.groupby("pair_type")["q3"].agg(pairs="size", mean_q3="mean").reindex(PAIR_TYPES)
    summary["pairs"] = summary["pairs"].fillna(0).astype(int)
    return summary.reset_index()[columns]


PAIR_TYPES = ["same prompt", "same category", "different category"]


@dataclass
class Concordance:
    """Kendall's W of category rankings, its chi-squared test and the table's size."""

    w: float
    chi_squared: float
    p_value: float
    configurations: int
    categories: int


def category_concordance(cells: pd.DataFrame, prompts: pd.DataFrame) -> Concordance:
    """Return Kendall's W of the harm-category JSR rankings across configurations.

    Each configuration ranks the categories by JSR, pooled over prompts (a
    prompt counts in each of its tags) and languages. W is 1 when every
    configuration ranks them alike and near 0 when the rankings are unrelated.
    Ties get average ranks with the usual tie correction.
    """
    tagged = cells.merge(prompt_tags(prompts), on="id", how="inner")
    jsr = pooled_rates(tagged, ["configuration", "tag"]).pivot(index="configuration", columns="tag", values="jsr")
    jsr = jsr.dropna(axis=1)
    configurations, categories = jsr.shape
    if configurations < MIN_CONFIGURATIONS or categories < 2:
        log.warning("Kendall's W needs %d configurations and 2 categories, got %d and %d",
                    MIN_CONFIGURATIONS, configurations, categories)
        return Concordance(float("nan"), float("nan"), float("nan"), configurations, categories)

    w = kendall_w(jsr.to_numpy(dtype=float))
    statistic = configurations * (categories - 1) * w
    p_value = float(chi2.sf(statistic, categories - 1)) if np.isfinite(w) else float("nan")
    return Concordance(w, float(statistic), p_value, configurations, categories)


def kendall_w(scores: np.ndarray) -> float:
    """Return Kendall's W (tie-corrected) of a raters x objects score matrix, or NaN if every rater ties all objects."""
    raters, objects = scores.shape
    ranks = rankdata(scores, axis=1)
    rank_sums = ranks.sum(axis=0)
    spread = ((rank_sums - rank_sums.mean()) ** 2).sum()

    tie_correction = 0.0
    for row in scores:
        _, counts = np.unique(row, return_counts=True)
        tie_correction += (counts**3 - counts).sum()
    denominator = raters**2 * (objects**3 - objects) - raters * tie_correction
    if denominator <= 0:
        log.warning("every configuration gives all categories the same JSR, so Kendall's W is undefined")
        return float("nan")
    return float(12 * spread / denominator)


def _residual_matrix(cells: pd.DataFrame, parameters: pd.DataFrame) -> pd.DataFrame:
    valid = cells[cells["n_valid"] > 0]
    residual = valid["n_safe"] / valid["n_valid"] - irt_probability(valid, parameters)
    return valid.assign(residual=residual).pivot(index="configuration", columns=["id", "language"], values="residual")


def _usable_columns(matrix: pd.DataFrame, what: str) -> pd.DataFrame | None:
    """Drop columns with missing or constant values; return None (with a warning) when too little is left."""
    if len(matrix) < MIN_CONFIGURATIONS:
        log.warning("%d configurations; correlations of %s need at least %d", len(matrix), what, MIN_CONFIGURATIONS)
        return None

    complete = matrix.dropna(axis=1)
    varying = complete.loc[:, complete.std(axis=0) > 0]
    dropped = matrix.shape[1] - varying.shape[1]
    if dropped:
        log.warning("dropped %d of %d %s that are missing in a configuration or constant across configurations",
                    dropped, matrix.shape[1], what)
    if varying.shape[1] < 2:
        log.warning("fewer than 2 usable %s, so their correlations are undefined", what)
        return None
    return varying


def _pair_types(items: pd.DataFrame, first: np.ndarray, second: np.ndarray, prompts: pd.DataFrame) -> np.ndarray:
    ids = items["id"].to_numpy()
    tags = prompt_tags(prompts)
    # Items x tags incidence; two items share a category where their rows overlap.
    incidence = pd.crosstab(tags["id"], tags["tag"]).reindex(ids, fill_value=0).to_numpy(dtype=np.int64)
    overlap = incidence @ incidence.T

    same_prompt = ids[first] == ids[second]
    shares_tag = overlap[first, second] > 0
    return np.where(same_prompt, PAIR_TYPES[0], np.where(shares_tag, PAIR_TYPES[1], PAIR_TYPES[2]))
