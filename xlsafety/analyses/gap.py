"""The cross-lingual gap tau: largest cells, and averages by harm category and by language.

tau_iL > 0 means prompt i is harder to refuse in language L than its
hardness beta_i and the language's difficulty gamma_L predict, so the
configurations are less safe there. tau is 0 in the reference language and
for anchored prompts, and those cells are left out here.
"""

import logging

import numpy as np
import pandas as pd

from xlsafety.analyses.common import prompt_tags, resource_level

log = logging.getLogger(__name__)


def free_tau(parameters: pd.DataFrame) -> pd.DataFrame:
    """Return the estimated (not fixed) tau cells as id, language, tau."""
    selected = parameters[(parameters["parameter"] == "tau") & ~parameters["fixed"].astype(bool)]
    table = selected[["id", "language", "estimate"]].rename(columns={"estimate": "tau"})
    return table.astype({"id": "int64"}).reset_index(drop=True)


def top_tau(tau: pd.DataFrame, prompts: pd.DataFrame, count: int) -> pd.DataFrame:
    """Return the `count` cells with the largest |tau|, with the language's resource level and the prompt's tags."""
    ordered = tau.assign(magnitude=tau["tau"].abs()).sort_values(
        ["magnitude", "id", "language"], ascending=[False, True, True]
    )
    chosen = ordered.head(count).drop(columns="magnitude")
    tags = prompt_tags(prompts).groupby("id")["tag"].agg("; ".join).rename("tags").reset_index()
    chosen = chosen.merge(tags, on="id", how="left")
    return chosen.assign(resource=chosen["language"].map(resource_level)).reset_index(drop=True)


def tau_by_language(tau: pd.DataFrame) -> pd.DataFrame:
    """Summarise tau per language: cells, mean, mean |tau| and standard deviation."""
    table = (
        tau.assign(magnitude=tau["tau"].abs())
        .groupby("language", sort=True)
        .agg(cells=("tau", "size"), mean_tau=("tau", "mean"), mean_abs_tau=("magnitude", "mean"), sd_tau=("tau", "std"))
        .reset_index()
    )
    return table.assign(resource=table["language"].map(resource_level))


def tau_by_category(
    tau: pd.DataFrame, prompts: pd.DataFrame, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Return the mean tau per harm category with a percentile bootstrap interval.

    A prompt with several tags counts in each of its categories. The bootstrap
    resamples prompts, not cells, within a category, because the tau cells of
    one prompt in different languages are not independent. A category with a
    single prompt gets the mean and no interval.
    """
    tagged = tau.merge(prompt_tags(prompts), on="id", how="inner")
    if tagged.empty:
        log.warning("no tau cell has a tagged prompt, so tau by harm category is empty")
    rng = np.random.default_rng(seed)
    rows = [_category_row(tag, group, rng, resamples, level) for tag, group in tagged.groupby("tag", sort=True)]
    columns = ["tag", "prompts", "cells", "mean_tau", "lower", "upper"]
    return pd.DataFrame(rows, columns=columns)


def _category_row(tag, group, rng, resamples, level) -> dict:
    per_prompt = group.groupby("id")["tau"].agg(["sum", "size"])
    sums, sizes = per_prompt["sum"].to_numpy(), per_prompt["size"].to_numpy()
    row = {"tag": tag, "prompts": len(sums), "cells": int(sizes.sum()), "mean_tau": sums.sum() / sizes.sum()}

    if len(sums) < 2:
        return {**row, "lower": np.nan, "upper": np.nan}
    # Each row of `picks` is one bootstrap sample of the category's prompts.
    picks = rng.integers(0, len(sums), size=(resamples, len(sums)))
    means = sums[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    tail = (1 - level) / 2
    lower, upper = np.quantile(means, [tail, 1 - tail])
    return {**row, "lower": float(lower), "upper": float(upper)}


def tau_vs_quality(tau: pd.DataFrame, quality: pd.DataFrame) -> pd.DataFrame:
    """Relate tau to the back-translation chrF of machine-translated prompts, per language and pooled.

    `quality` has the translate rule's columns (language, id, chrf, ...). Only
    translated cells with a tau estimate count. A negative correlation means
    that worse translations come with larger gaps, which suggests that part
    of the gap is translation noise rather than a property of the language.
    Spearman's rho is reported next to Pearson's r because chrF is bounded
    and often skewed. A group with fewer than 3 cells gets no correlation.
    """
    joined = tau.merge(quality[["language", "id", "chrf"]], on=["language", "id"], how="inner")
    joined = joined.dropna(subset=["chrf"])
    rows = [_quality_row(language, group) for language, group in joined.groupby("language", sort=True)]
    if not joined.empty:
        rows.append(_quality_row("all", joined))
    columns = ["language", "cells", "mean_chrf", "pearson_r", "spearman_rho", "mean_tau_low_chrf",
               "mean_tau_high_chrf"]
    return pd.DataFrame(rows, columns=columns)


def _quality_row(language: str, group: pd.DataFrame) -> dict:
    row = {"language": language, "cells": len(group), "mean_chrf": float(group["chrf"].mean())}
    if len(group) < 3 or group["chrf"].nunique() < 2 or group["tau"].nunique() < 2:
        return {**row, "pearson_r": np.nan, "spearman_rho": np.nan, "mean_tau_low_chrf": np.nan,
                "mean_tau_high_chrf": np.nan}

    # The median splits the cells into the worse and the better translated half.
    low = group["chrf"] <= group["chrf"].median()
    return {
        **row,
        "pearson_r": float(group["tau"].corr(group["chrf"])),
        "spearman_rho": float(group["tau"].corr(group["chrf"], method="spearman")),
        "mean_tau_low_chrf": float(group.loc[low, "tau"].mean()),
        "mean_tau_high_chrf": float(group.loc[~low, "tau"].mean()) if (~low).any() else np.nan,
    }
