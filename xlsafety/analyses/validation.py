"""Held-out predictive validation: log-loss and AUC of baselines and the IRT model.

Cells (configuration, prompt, language) with a valid pass are split in one of
three ways (`SPLITS`): K seeded folds of cells, one fold per language
(leave-one-language-out), or one fold per model family, the configurations
that share a model (leave-one-family-out). Each model is fitted on the other
folds and predicts P(safe) for the held-out cells. A unit that the training
folds lack gets its prior mean (0 for theta, gamma, delta and tau).
Log-loss is the binomial log-loss per valid pass in nats,
-(k log p + (n - k) log(1 - p)) / n summed over cells, and AUC treats every
held-out pass as one case (safe = positive) scored by its cell's P(safe).
"""

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit

from xlsafety.analyses.common import irt_probability

log = logging.getLogger(__name__)

# Predictions are kept this far from 0 and 1, so that one confident miss costs
# a large but finite loss.
PROBABILITY_FLOOR = 1e-9

# Standard deviations of the Gaussian priors of the additive model. They keep the
# estimates finite where a configuration, prompt or language, or the whole training
# set, is always safe or never safe.
ADDITIVE_PRIOR_SD = 3.0
INTERCEPT_PRIOR_SD = 10.0

Predictor = Callable[[pd.DataFrame, pd.DataFrame], np.ndarray]


def assign_folds(cells: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Return a fold number in 0..folds-1 per cell, balanced and shuffled with `seed`."""
    order = np.random.default_rng(seed).permutation(len(cells))
    assignment = np.empty(len(cells), dtype=int)
    assignment[order] = np.arange(len(cells)) % folds
    return assignment


SPLITS = ("k-fold", "leave-one-language-out", "leave-one-family-out")


def split_labels(cells: pd.DataFrame, split: str, *, folds: int = 5, seed: int = 0,
                 families: dict[str, str] | None = None, reference_language: str | None = None) -> pd.Series:
    """Return the held-out fold of each cell under `split`, or None for cells that always stay in training.

    The reference language is never held out, because the multi-group models
    are identified by fixing its gamma and delta to 0. A configuration missing
    from `families` is its own family.
    """
    if split == "k-fold":
        return pd.Series(assign_folds(cells, folds, seed).astype(str), index=cells.index, dtype=object)
    if split == "leave-one-language-out":
        labels = cells["language"].astype(object)
        return labels.where(labels != reference_language, None)
    if split == "leave-one-family-out":
        families = families or {}
        return cells["configuration"].map(lambda configuration: families.get(configuration, configuration))
    raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def binomial_log_loss(safe, valid, probability) -> float:
    """Return the mean log-loss per pass (nats) of predicting P(safe) = `probability` for k safe of n passes."""
    safe, valid = np.asarray(safe, dtype=float), np.asarray(valid, dtype=float)
    probability = np.clip(np.asarray(probability, dtype=float), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    loss = -(safe * np.log(probability) + (valid - safe) * np.log1p(-probability))
    return float(loss.sum() / valid.sum())


def weighted_auc(safe, valid, probability) -> float:
    """Return the AUC of `probability` for separating safe from unsafe passes, or NaN without both kinds.

    A cell contributes k positive and n - k negative cases with the same score,
    and tied scores count one half.
    """
    frame = pd.DataFrame({"score": probability, "positive": safe, "negative": np.subtract(valid, safe)})
    by_score = frame.groupby("score", sort=True)[["positive", "negative"]].sum()
    positives, negatives = by_score["positive"].sum(), by_score["negative"].sum()
    if positives == 0 or negatives == 0:
        return float("nan")

    negatives_below = by_score["negative"].cumsum() - by_score["negative"]
    wins = (by_score["positive"] * (negatives_below + 0.5 * by_score["negative"])).sum()
    return float(wins / (positives * negatives))


def predict_intercept(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Predict the training safe share for every held-out cell."""
    return np.full(len(test), train["n_safe"].sum() / train["n_valid"].sum())


def predict_configuration(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Predict each configuration's training safe share, with Jeffreys smoothing (k + 0.5) / (n + 1).

    A configuration absent from the training folds gets the overall share.
    """
    totals = train.groupby("configuration")[["n_safe", "n_valid"]].sum()
    share = (totals["n_safe"] + 0.5) / (totals["n_valid"] + 1.0)
    overall = train["n_safe"].sum() / train["n_valid"].sum()
    return test["configuration"].map(share).fillna(overall).to_numpy(dtype=float)


def predict_additive(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Predict with logit P(safe) = b + c_configuration + p_prompt + l_language, fitted by MAP.

    This is the multi-group model without tau and alpha: every effect adds on
    the logit scale. Effects have a Normal(0, ADDITIVE_PRIOR_SD) prior and the
    intercept a Normal(0, INTERCEPT_PRIOR_SD) prior, and a
    level absent from the training folds contributes 0.
    """
    levels = {key: np.sort(train[key].unique()) for key in ("configuration", "id", "language")}
    offsets = np.cumsum([1] + [len(values) for values in levels.values()])[:-1]
    size = 1 + sum(len(values) for values in levels.values())

    train_index = _effect_index(train, levels, offsets, unseen=size)
    safe, valid = train["n_safe"].to_numpy(dtype=float), train["n_valid"].to_numpy(dtype=float)

    def objective(coefficients):
        logit = coefficients[0] + coefficients[train_index].sum(axis=1)
        residual = valid * expit(logit) - safe
        penalty = np.sum(coefficients[1:] ** 2) / (2 * ADDITIVE_PRIOR_SD**2) + coefficients[0] ** 2 / (
            2 * INTERCEPT_PRIOR_SD**2
        )
        loss = np.sum(valid * np.logaddexp(0, logit) - safe * logit) + penalty

        gradient = np.bincount(train_index.ravel(), weights=np.repeat(residual, train_index.shape[1]), minlength=size)
        gradient[0] = residual.sum() + coefficients[0] / INTERCEPT_PRIOR_SD**2
        gradient[1:] += coefficients[1:] / ADDITIVE_PRIOR_SD**2
        return loss, gradient

    result = minimize(objective, np.zeros(size), jac=True, method="L-BFGS-B")
    if not result.success:
        log.warning("additive logistic fit did not converge: %s", result.message)

    coefficients = np.append(result.x, 0.0)
    test_index = _effect_index(test, levels, offsets, unseen=size)
    return expit(coefficients[0] + coefficients[test_index].sum(axis=1))


def _effect_index(cells, levels, offsets, unseen: int) -> np.ndarray:
    """Return the coefficient positions of each cell's three effects; unseen levels point at `unseen`."""
    columns = []
    for (key, values), offset in zip(levels.items(), offsets):
        position = np.searchsorted(values, cells[key].to_numpy())
        position = np.clip(position, 0, len(values) - 1)
        found = values[position] == cells[key].to_numpy()
        columns.append(np.where(found, offset + position, unseen))
    return np.column_stack(columns)


def irt_predictor(fit: Callable, options) -> Predictor:
    """Return a predictor that fits the IRT model with `fit(train, options)` and predicts from its parameters.

    Standard errors are switched off where the options allow it, because only
    the point estimates are used.
    """
    if any(field.name == "standard_errors" for field in dataclasses.fields(options)):
        options = dataclasses.replace(options, standard_errors=False)

    def predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        return irt_probability(test, fit(train, options).parameters)

    return predict


def cross_validate(cells: pd.DataFrame, predictors: dict[str, Predictor], folds: int, seed: int,
                   split: str = "k-fold", families: dict[str, str] | None = None,
                   reference_language: str | None = None) -> pd.DataFrame:
    """Return the held-out P(safe) of every model for every held-out cell with a valid pass.

    The result has the cell keys, n_valid, n_safe, split, fold, and one column
    per model. A split that would leave no training cells (a single model
    family) returns no rows, with a warning.
    """
    usable = cells[cells["n_valid"] > 0].reset_index(drop=True)
    if split == "k-fold" and len(usable) < folds:
        log.warning("%d cells with a valid pass are fewer than %d folds; using %d folds",
                    len(usable), folds, len(usable))
        folds = len(usable)
    usable["fold"] = split_labels(usable, split, folds=folds, seed=seed, families=families,
                                  reference_language=reference_language)
    labels = sorted(label for label in usable["fold"].dropna().unique())
    # Holding out the only fold would leave nothing to train on, unless some cells
    # (the reference language) always stay in training.
    if not labels or (len(labels) == 1 and usable["fold"].notna().all()):
        log.warning("split %s has %d fold(s) and no cells outside them, so it is skipped", split, len(labels))
        return usable.iloc[0:0].assign(split=split, **{name: np.nan for name in predictors})

    predictions = {name: np.full(len(usable), np.nan) for name in predictors}
    for number, label in enumerate(labels, start=1):
        held_out = (usable["fold"] == label).to_numpy()
        train, test = usable[~held_out], usable[held_out]
        for name, predictor in predictors.items():
            predictions[name][held_out] = predictor(train, test)
        log.info("%s fold %s (%d of %d): %d held-out cells", split, label, number, len(labels),
                 int(held_out.sum()))
    in_some_fold = usable["fold"].notna().to_numpy()
    return usable.assign(split=split, **predictions)[in_some_fold].reset_index(drop=True)


def score_predictions(predictions: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Return log-loss and AUC per split, model and fold, and pooled over the folds of a split (fold = "all")."""
    if "split" not in predictions.columns:
        predictions = predictions.assign(split="k-fold")
    rows = []
    for split, by_split in predictions.groupby("split", sort=False):
        for model in models:
            groups = [(str(fold), part) for fold, part in by_split.groupby("fold")] + [("all", by_split)]
            for fold, part in groups:
                rows.append(
                    {
                        "split": split,
                        "model": model,
                        "fold": fold,
                        "cells": len(part),
                        "passes": int(part["n_valid"].sum()),
                        "log_loss": binomial_log_loss(part["n_safe"], part["n_valid"], part[model]),
                        "auc": weighted_auc(part["n_safe"], part["n_valid"], part[model]),
                    }
                )
    return pd.DataFrame(rows)


def no_tau_predictor(fit: Callable, options) -> Predictor:
    """Return a predictor for the multi-group model without tau: every training prompt is an anchor."""
    def predict(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
        anchored = dataclasses.replace(options, anchors=sorted(int(value) for value in train["id"].unique()))
        return irt_predictor(fit, anchored)(train, test)

    return predict
