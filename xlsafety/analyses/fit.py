"""Model selection and fit: information criteria, item and person fit, and test information curves.

Item and person fit use the cells as binomial observations: a cell of n
valid passes with P(safe) = p has expectation E = n p and variance
W = n p (1 - p), and its squared standardised residual is (k - E)^2 / W. The
outfit mean square is the mean of these over a unit's cells, and the infit
mean square is sum (k - E)^2 / sum W, which weights cells by their
information. Both are 1 on average when the model holds. Both also equal
the Bernoulli definitions of Rasch practice when every cell has one pass.
"""

import logging
import math

import numpy as np
import pandas as pd

from xlsafety.analyses.common import irt_probability, resource_level

log = logging.getLogger(__name__)

# Mean squares outside this range are flagged. It is the range Rasch practice commonly accepts
# for survey-style data, because it tolerates 30% more or less variation than the model predicts.
FIT_RANGE = (0.7, 1.3)

# Predictions are kept this far from 0 and 1, so that a cell the model finds certain stays finite.
PROBABILITY_FLOOR = 1e-9

BINARY, GRADED = "safe/unsafe", "score 1..5"


# Information criteria


def model_comparison(summaries: dict[str, dict], safe_log_likelihoods: dict[str, float]) -> pd.DataFrame:
    """Return one row per fitted model with its log-likelihood, AIC, BIC and parameter count.

    `summaries` maps a model to its fit.json. AIC and BIC are comparable only
    between models of the same response, because the graded model's
    likelihood is that of the 1..5 score. delta_aic and delta_bic are therefore
    taken within each response. `safe_log_likelihoods` maps a model to the
    log-likelihood of the safe/unsafe passes under its P(safe), which every
    model has, including the graded one, so that column compares all models.
    """
    rows = []
    for model, summary in summaries.items():
        rows.append({
            "model": model,
            "response": GRADED if model == "grm" else BINARY,
            "parameters": summary["parameters"],
            "cells": summary["cells"],
            "passes": summary["passes"],
            "log_likelihood": summary["log_likelihood"],
            "aic": summary["aic"],
            "bic": summary["bic"],
            "safe_log_likelihood": safe_log_likelihoods.get(model, np.nan),
            "converged": summary["converged"],
        })
    table = pd.DataFrame(rows)
    for criterion in ("aic", "bic"):
        best = table.groupby("response")[criterion].transform("min")
        table[f"delta_{criterion}"] = table[criterion] - best
    return table.sort_values(["response", "aic"], ascending=[False, True]).reset_index(drop=True)


def safe_probability(cells: pd.DataFrame, parameters: pd.DataFrame) -> np.ndarray:
    """Return each cell's P(safe) under the fitted model whose long parameter table is `parameters`.

    The unidimensional 1pl and 2pl models have items per (prompt, language),
    recognisable by a language on their beta rows. The multigroup models and
    the graded model use the multigroup formula, which for the graded model
    is P(score >= 4).
    """
    beta = parameters[parameters["parameter"] == "beta"]
    if beta["language"].isna().all():
        return irt_probability(cells, parameters)

    frame = cells[["configuration", "id", "language"]].copy()
    theta = parameters.loc[parameters["parameter"] == "theta", ["configuration", "estimate"]]
    frame = frame.merge(theta.rename(columns={"estimate": "theta"}), on="configuration", how="left")
    for name, default in (("beta", 0.0), ("alpha", 1.0)):
        values = parameters.loc[parameters["parameter"] == name, ["id", "language", "estimate"]]
        values = values.assign(id=values["id"].astype(np.int64)).rename(columns={"estimate": name})
        frame = frame.merge(values, on=["id", "language"], how="left")
        frame[name] = frame[name].fillna(default)
    logit = frame["alpha"] * (frame["theta"].fillna(0.0) - frame["beta"])
    return 1.0 / (1.0 + np.exp(-logit.to_numpy(dtype=float)))


def binomial_log_likelihood(cells: pd.DataFrame, probability) -> float:
    """Return the log-likelihood of the individual passes, sum k log p + (n - k) log(1 - p) over cells."""
    p = np.clip(np.asarray(probability, dtype=float), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    safe, valid = cells["n_safe"].to_numpy(float), cells["n_valid"].to_numpy(float)
    return float(np.sum(safe * np.log(p) + (valid - safe) * np.log1p(-p)))


# Item and person fit


def cell_residuals(cells: pd.DataFrame, probability) -> pd.DataFrame:
    """Return per cell the expected safe count, its variance, its fourth central moment and the squared residual.

    Cells without a valid pass are dropped.
    """
    p = np.clip(np.asarray(probability, dtype=float), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    frame = cells[["configuration", "id", "language", "n_valid", "n_safe"]].assign(p=p)
    frame = frame[frame["n_valid"] > 0].copy()
    n, p = frame["n_valid"].to_numpy(float), frame["p"].to_numpy(float)
    pq = p * (1 - p)
    frame["expected"] = n * p
    frame["variance"] = n * pq
    frame["fourth_moment"] = n * pq * (1 + 3 * (n - 2) * pq)
    frame["squared_residual"] = (frame["n_safe"] - frame["expected"]) ** 2
    frame["log_likelihood"] = frame["n_safe"] * np.log(p) + (n - frame["n_safe"]) * np.log1p(-p)
    frame["expected_log_likelihood"] = n * (p * np.log(p) + (1 - p) * np.log1p(-p))
    frame["log_likelihood_variance"] = n * pq * np.log(p / (1 - p)) ** 2
    return frame


def mean_squares(residuals: pd.DataFrame, keys: list[str], fit_range: tuple[float, float] = FIT_RANGE) -> pd.DataFrame:
    """Return infit and outfit mean squares, their standardised forms and a misfit label per unit of `keys`.

    The standardised forms (ZSTD) use the Wilson-Hilferty cube-root transform
    with the usual Rasch variances of the mean squares,
    q^2 = sum(C / W^2) / N^2 - 1 / N for outfit and q^2 = sum(C - W^2) / (sum W)^2
    for infit, where C is a cell's fourth central moment and N the unit's cell count.
    `misfit` is "underfit" where either mean square exceeds the upper bound,
    "overfit" where either is below the lower bound (and neither above), and
    "" otherwise.
    """
    frame = residuals.assign(
        z_squared=residuals["squared_residual"] / residuals["variance"],
        outfit_term=residuals["fourth_moment"] / residuals["variance"] ** 2,
        infit_term=residuals["fourth_moment"] - residuals["variance"] ** 2,
    )
    grouped = frame.groupby(keys, sort=True)
    table = grouped.agg(
        cells=("z_squared", "size"),
        passes=("n_valid", "sum"),
        outfit=("z_squared", "mean"),
        outfit_term=("outfit_term", "sum"),
        squared_residual=("squared_residual", "sum"),
        variance=("variance", "sum"),
        infit_term=("infit_term", "sum"),
    ).reset_index()

    table["infit"] = table["squared_residual"] / table["variance"]
    outfit_q = np.sqrt(np.clip(table["outfit_term"] / table["cells"] ** 2 - 1 / table["cells"], 0, None))
    infit_q = np.sqrt(np.clip(table["infit_term"] / table["variance"] ** 2, 0, None))
    table["infit_zstd"] = standardised_mean_square(table["infit"], infit_q)
    table["outfit_zstd"] = standardised_mean_square(table["outfit"], outfit_q)
    table["misfit"] = misfit_label(table["infit"], table["outfit"], fit_range)
    return table[[*keys, "cells", "passes", "infit", "outfit", "infit_zstd", "outfit_zstd", "misfit"]]


def standardised_mean_square(mean_square, q) -> np.ndarray:
    """Return the Wilson-Hilferty z value (MS^(1/3) - 1)(3 / q) + q / 3, NaN where q is 0."""
    mean_square, q = np.asarray(mean_square, dtype=float), np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.cbrt(mean_square) - 1) * (3 / q) + q / 3
    return np.where(q > 0, z, np.nan)


def misfit_label(infit, outfit, fit_range: tuple[float, float] = FIT_RANGE) -> list[str]:
    """Label each unit "underfit", "overfit" or "" from its infit and outfit mean squares."""
    lower, upper = fit_range
    labels = []
    for inner, outer in zip(infit, outfit):
        if inner > upper or outer > upper:
            labels.append("underfit")
        elif inner < lower or outer < lower:
            labels.append("overfit")
        else:
            labels.append("")
    return labels


def is_misfit(labels: pd.Series) -> pd.Series:
    """Return True where a misfit label is set; a table read back from CSV has NaN for ""."""
    return labels.notna() & (labels.astype(str) != "")


def item_keys(parameters: pd.DataFrame) -> list[str]:
    """Return the columns that name an item: the prompt, plus the language in the unidimensional models."""
    beta = parameters[parameters["parameter"] == "beta"]
    return ["id"] if beta["language"].isna().all() else ["id", "language"]


def person_fit(residuals: pd.DataFrame, fit_range: tuple[float, float] = FIT_RANGE) -> pd.DataFrame:
    """Return infit, outfit and the standardised log-likelihood lz per configuration.

    lz = (l - E[l]) / sqrt(Var[l]) is the standardised log-likelihood person-fit
    statistic, where l is the log-likelihood of the configuration's passes. Large negative
    values mark a configuration whose answers the model predicts badly.
    """
    table = mean_squares(residuals, ["configuration"], fit_range)
    sums = residuals.groupby("configuration", sort=True)[
        ["log_likelihood", "expected_log_likelihood", "log_likelihood_variance"]].sum()
    lz = (sums["log_likelihood"] - sums["expected_log_likelihood"]) / np.sqrt(sums["log_likelihood_variance"])
    return table.merge(lz.rename("lz").reset_index(), on="configuration", how="left")


# Test information


def information_curves(parameters: pd.DataFrame, grid, languages: list[str]) -> pd.DataFrame:
    """Return the test information of one pass of every prompt, per language, at each robustness in `grid`.

    The robustness is theta + delta in the multigroup models and theta in the
    unidimensional ones. A binary item contributes a^2 P (1 - P). A graded item
    contributes a^2 sum_c (P*_c Q*_c - P*_{c+1} Q*_{c+1})^2 / P_c (Samejima),
    where P*_c = P(score >= c). standard_error is 1 / sqrt(information), the
    standard error of a robustness estimated from those passes alone.
    """
    grid = np.asarray(grid, dtype=float)
    items = item_locations(parameters, languages)
    frames = []
    for language, group in items.groupby("language", sort=True):
        u = grid[:, None] - group["location"].to_numpy()[None, :]
        alpha = group["alpha"].to_numpy()[None, :]
        if "offsets" in group:
            contribution = _graded_information(u, alpha, np.stack(group["offsets"].to_numpy()))
        else:
            p = 1.0 / (1.0 + np.exp(-alpha * u))
            contribution = alpha**2 * p * (1 - p)
        information = contribution.sum(axis=1)
        frames.append(pd.DataFrame({
            "language": language, "resource": resource_level(language), "ability": grid,
            "information": information, "standard_error": 1 / np.sqrt(information), "items": len(group),
        }))
    columns = ["language", "resource", "ability", "information", "standard_error", "items"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def item_locations(parameters: pd.DataFrame, languages: list[str]) -> pd.DataFrame:
    """Return each item's location and discrimination per language (and the graded offsets, for grm).

    In the multigroup models the location of prompt i in language L is
    beta_i + gamma_L + tau_iL, so each prompt counts in each of `languages`.
    The reference language has no gamma or tau rows, which are 0 there. The
    unidimensional models list their items per language themselves.
    """
    def family(name, keys):
        rows = parameters[parameters["parameter"] == name]
        return rows[keys + ["estimate"]].rename(columns={"estimate": name})

    beta = parameters[parameters["parameter"] == "beta"]
    if not beta["language"].isna().all():
        items = family("beta", ["id", "language"]).merge(family("alpha", ["id", "language"]),
                                                         on=["id", "language"], how="left")
        return items.assign(location=items["beta"], alpha=items["alpha"].fillna(1.0))

    gamma = family("gamma", ["language"])
    grid = pd.MultiIndex.from_product([family("beta", ["id"])["id"], languages], names=["id", "language"])
    items = grid.to_frame(index=False).merge(family("beta", ["id"]), on="id")
    items = items.merge(family("alpha", ["id"]), on="id", how="left")
    items = items.merge(gamma, on="language", how="left").merge(family("tau", ["id", "language"]),
                                                                on=["id", "language"], how="left")
    items = items.fillna({"alpha": 1.0, "gamma": 0.0, "tau": 0.0})
    items = items.assign(location=items["beta"] + items["gamma"] + items["tau"])
    steps = [family(name, ["id"]) for name in ("step_2", "step_3", "step_5")]
    if all(len(step) for step in steps):
        for step in steps:
            items = items.merge(step, on="id", how="left")
        items["offsets"] = list(np.stack([-(items["step_2"] + items["step_3"]), -items["step_3"],
                                          np.zeros(len(items)), items["step_5"]], axis=1))
    return items


def _graded_information(u, alpha, offsets) -> np.ndarray:
    """Return Samejima's item information per (grid point, item) for the 5-category graded model."""
    cumulative = 1.0 / (1.0 + np.exp(-alpha[..., None] * (u[..., None] - offsets[None, :, :])))
    ones = np.ones(u.shape + (1,))
    zeros = np.zeros(u.shape + (1,))
    bounds = np.concatenate([ones, cumulative, zeros], axis=-1)
    slope_terms = bounds * (1 - bounds)
    category = np.clip(bounds[..., :-1] - bounds[..., 1:], PROBABILITY_FLOOR, None)
    return (alpha**2) * np.sum((slope_terms[..., :-1] - slope_terms[..., 1:]) ** 2 / category, axis=-1)


def ability_grid(low: float = -4.0, high: float = 4.0, points: int = 161) -> np.ndarray:
    """Return the robustness values at which the information curves are evaluated."""
    if not (high > low and points >= 2):
        raise ValueError(f"need low < high and 2 or more points, got {low}, {high}, {points}")
    return np.linspace(low, high, points)


def fit_headlines(comparison: pd.DataFrame, items: pd.DataFrame, persons: pd.DataFrame) -> dict:
    """Return the numbers the summary reports: the best models by AIC and BIC, and the counts of misfits."""
    binary = comparison[comparison["response"] == BINARY]
    return {
        "best_aic": binary.loc[binary["aic"].idxmin(), "model"] if len(binary) else None,
        "best_bic": binary.loc[binary["bic"].idxmin(), "model"] if len(binary) else None,
        "items": len(items),
        "items_misfitting": int(is_misfit(items["misfit"]).sum()),
        "persons": len(persons),
        "persons_misfitting": int(is_misfit(persons["misfit"]).sum()),
        "lowest_lz": float(persons["lz"].min()) if len(persons) else math.nan,
    }
