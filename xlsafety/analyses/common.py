"""Helpers shared by the analyses: pooled rates, resource levels and IRT predictions."""

import logging

import numpy as np
import pandas as pd

from xlsafety.languages import LANGUAGES

log = logging.getLogger(__name__)

# Resource levels from the reference language down, the order tables and figures use.
RESOURCE_ORDER = ("reference", "high", "medium", "low")

# Keys of the parameter families in the long IRT table and the value a missing entry takes.
# Reference-language delta, gamma and tau are absent from the table because they are 0
# by definition, and a model without discrimination has no alpha, which is then 1.
PARAMETER_KEYS = {
    "theta": (["configuration"], 0.0),
    "delta": (["configuration", "language"], 0.0),
    "beta": (["id"], 0.0),
    "gamma": (["language"], 0.0),
    "tau": (["id", "language"], 0.0),
    "alpha": (["id"], 1.0),
}


def resource_level(language: str) -> str:
    """Return the resource level (reference, high, medium, low) of a language, or "unknown"."""
    known = LANGUAGES.get(language)
    return known.resource if known is not None else "unknown"


def pooled_rates(cells: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sum valid and safe passes over `keys` and add the safe share and the JSR.

    Returns one row per group with n_valid, n_safe, n_unsafe, safe_rate and
    jsr (1 - safe_rate). Both rates are NaN for a group without a valid pass.
    """
    totals = cells.groupby(keys, sort=True)[["n_valid", "n_safe"]].sum().reset_index()
    valid = totals["n_valid"].where(totals["n_valid"] > 0)
    return totals.assign(
        n_unsafe=totals["n_valid"] - totals["n_safe"],
        safe_rate=totals["n_safe"] / valid,
        jsr=1.0 - totals["n_safe"] / valid,
    )


def parameter_values(parameters: pd.DataFrame, name: str) -> pd.DataFrame:
    """Return one parameter family as its key columns plus a column named after it."""
    keys, _ = PARAMETER_KEYS[name]
    rows = parameters[parameters["parameter"] == name]
    # The unidimensional 1PL and 2PL treat each (prompt, language) as its own item,
    # so their beta and alpha carry a language.
    if "language" not in keys and "id" in keys and "language" in rows and rows["language"].notna().any():
        keys = keys + ["language"]
    selected = rows[keys + ["estimate"]]
    return selected.rename(columns={"estimate": name}).reset_index(drop=True)


def ability(parameters: pd.DataFrame, configurations: list[str], languages: list[str]) -> pd.DataFrame:
    """Return theta + delta per configuration x language (the configuration's robustness in that language).

    Higher is safer. delta is 0 in the reference language, where the table has no entry.
    """
    grid = pd.MultiIndex.from_product([configurations, languages], names=["configuration", "language"]).to_frame(
        index=False
    )
    grid = grid.merge(parameter_values(parameters, "theta"), on="configuration", how="left")
    grid = grid.merge(parameter_values(parameters, "delta"), on=["configuration", "language"], how="left")
    grid["delta"] = grid["delta"].fillna(0.0)
    return grid.assign(ability=grid["theta"] + grid["delta"])


def irt_probability(cells: pd.DataFrame, parameters: pd.DataFrame) -> np.ndarray:
    """Return the model's P(safe) for each row of `cells`.

    P(safe) = sigmoid(alpha_i ((theta_j + delta_jL) - (beta_i + gamma_L + tau_iL))).
    A parameter missing from the table takes its reference value (0, or 1 for
    alpha), which is also the prior mean for a unit that was not in the fit.
    """
    frame = cells[["configuration", "id", "language"]].copy()
    for name, (_, default) in PARAMETER_KEYS.items():
        values = parameter_values(parameters, name)
        keys = [column for column in values.columns if column != name]
        frame = frame.merge(values, on=keys, how="left")
        missing = frame[name].isna()
        if missing.any() and name in ("theta", "beta"):
            log.warning("%d cells have no %s in the parameter table; using 0", int(missing.sum()), name)
        frame[name] = frame[name].fillna(default)

    logit = frame["alpha"] * ((frame["theta"] + frame["delta"]) - (frame["beta"] + frame["gamma"] + frame["tau"]))
    return (1.0 / (1.0 + np.exp(-logit.to_numpy(dtype=float)))).astype(float)


def prompt_tags(prompts: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (prompt id, tag); a prompt with several tags appears once per tag."""
    tags = prompts.drop_duplicates("id")[["id", "tags"]].explode("tags").rename(columns={"tags": "tag"})
    return tags.dropna(subset=["tag"]).reset_index(drop=True)
