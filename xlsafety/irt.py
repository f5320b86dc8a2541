"""The multi-group IRT model of safety, fitted by MAP on binomial cells.

For configuration j, prompt i and language L, the probability that a valid
pass is safe (judge score 4 or 5, y = 1) is

    P(y = 1) = sigmoid(a_i * ((theta_j + delta_jL) - (b_i + gamma_L + tau_iL)))

theta: robustness of configuration j in every language; delta: how j's
safety shifts in L; b (beta): hardness of prompt i on the reference scale;
gamma: difficulty of language L; tau: the prompt-specific cross-lingual gap
(DIF); a (alpha): discrimination of prompt i. The reference language has
gamma = delta = tau = 0, and anchor prompts have tau = 0 in every language.

Priors (as MAP penalties): theta, beta, gamma ~ Normal(0, 1); delta ~
Normal(0, 0.5); tau ~ Cauchy(0, tau_scale); log a ~ Normal(0.5, 0.5), that is
a ~ LogNormal(0.5, 0.5) without the Jacobian term. A HalfCauchy hyperprior
on the tau scale would shrink that scale to zero in a MAP fit, so the scale is
fixed here (`tau_scale`).

The data are cells with k safe out of n valid passes; the likelihood is
binomial, which gives the same estimates as one Bernoulli row per pass at a
fraction of the cost.

NOTE: this module returns point estimates only. Standard errors (Laplace) and
the 1PL, unidimensional and graded variants are not implemented yet.
"""

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

MODELS = ("multigroup-2pl", "multigroup-1pl")

# Largest max |gradient| of the negative log posterior accepted as converged.
CONVERGED_GRADIENT = 1e-3


@dataclass
class FitOptions:
    """Options of one IRT fit."""

    model: str = "multigroup-2pl"
    reference_language: str = "en"
    anchors: list[int] = field(default_factory=list)
    tau_scale: float = 0.5
    max_iterations: int = 1000
    gradient_tolerance: float = 1e-6


@dataclass
class FitResult:
    """Estimates in long form and the fit's convergence summary."""

    parameters: pd.DataFrame
    summary: dict


def _index(values) -> tuple[list, dict]:
    labels = sorted(set(values))
    return labels, {label: position for position, label in enumerate(labels)}


def fit(cells: pd.DataFrame, options: FitOptions) -> FitResult:
    """Fit the multi-group model to cells with columns configuration, id, language, n_valid, n_safe."""
    import torch

    if options.model not in MODELS:
        raise ValueError(f"unknown IRT model {options.model!r}; available: {list(MODELS)}")
    used = cells[cells["n_valid"] > 0]
    if used.empty:
        raise ValueError("no cell has a valid pass; the IRT model has no data to fit")

    configurations, configuration_index = _index(used["configuration"])
    prompts, prompt_index = _index(used["id"].astype(int))
    languages, language_index = _index(used["language"])
    if options.reference_language not in language_index:
        raise ValueError(
            f"reference language {options.reference_language!r} has no valid cell; "
            f"languages with data: {languages}"
        )

    j = torch.tensor(used["configuration"].map(configuration_index).to_numpy())
    i = torch.tensor(used["id"].astype(int).map(prompt_index).to_numpy())
    g = torch.tensor(used["language"].map(language_index).to_numpy())
    n = torch.tensor(used["n_valid"].to_numpy(), dtype=torch.float64)
    k = torch.tensor(used["n_safe"].to_numpy(), dtype=torch.float64)

    n_configurations, n_prompts, n_languages = len(configurations), len(prompts), len(languages)
    reference = language_index[options.reference_language]

    # Masks pin the reference language and the anchors to zero.
    language_free = torch.ones(n_languages, dtype=torch.float64)
    language_free[reference] = 0.0
    tau_free = language_free.repeat(n_prompts, 1)
    anchors = [prompt_index[anchor] for anchor in options.anchors if anchor in prompt_index]
    tau_free[anchors, :] = 0.0

    theta = torch.zeros(n_configurations, dtype=torch.float64, requires_grad=True)
    delta = torch.zeros(n_configurations, n_languages, dtype=torch.float64, requires_grad=True)
    beta = torch.zeros(n_prompts, dtype=torch.float64, requires_grad=True)
    gamma = torch.zeros(n_languages, dtype=torch.float64, requires_grad=True)
    tau = torch.zeros(n_prompts, n_languages, dtype=torch.float64, requires_grad=True)
    log_alpha = torch.full((n_prompts,), 0.5, dtype=torch.float64, requires_grad=True)
    two_pl = options.model == "multigroup-2pl"
    free = [theta, delta, beta, gamma, tau] + ([log_alpha] if two_pl else [])

    def negative_log_likelihood():
        alpha = log_alpha.exp() if two_pl else torch.ones(n_prompts, dtype=torch.float64)
        ability = theta[j] + (delta * language_free)[j, g]
        hardness = beta[i] + (gamma * language_free)[g] + (tau * tau_free)[i, g]
        logit = alpha[i] * (ability - hardness)
        return -(k * torch.nn.functional.logsigmoid(logit) + (n - k) * torch.nn.functional.logsigmoid(-logit)).sum()

    def negative_log_prior():
        penalty = 0.5 * (theta**2).sum() + 0.5 * (beta**2).sum() + 0.5 * ((gamma * language_free) ** 2).sum()
        penalty = penalty + 0.5 * (((delta * language_free) / 0.5) ** 2).sum()
        penalty = penalty + torch.log1p(((tau * tau_free) / options.tau_scale) ** 2).sum()
        if two_pl:
            penalty = penalty + 0.5 * (((log_alpha - 0.5) / 0.5) ** 2).sum()
        return penalty

    optimizer = torch.optim.LBFGS(
        free, lr=1.0, max_iter=options.max_iterations, tolerance_grad=options.gradient_tolerance,
        tolerance_change=1e-12, history_size=50, line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        loss = negative_log_likelihood() + negative_log_prior()
        loss.backward()
        return loss

    optimizer.step(closure)
    loss = closure()
    gradient_norm = max(parameter.grad.abs().max().item() for parameter in free)
    iterations = optimizer.state[optimizer._params[0]].get("n_iter", 0)
    # L-BFGS also stops when the loss stops changing in float64, short of
    # gradient_tolerance; a fit that stopped early with a small gradient has converged.
    converged = iterations < options.max_iterations and gradient_norm <= CONVERGED_GRADIENT
    if not converged:
        log.warning(
            "IRT fit stopped after %d iterations without converging (max |gradient| %.2e); "
            "raise irt.max_iterations", iterations, gradient_norm,
        )

    with torch.no_grad():
        log_likelihood = -negative_log_likelihood().item()
        log_likelihood += float(_log_binomial_coefficients(used))
    n_free = int(n_configurations + (language_free.sum() * n_configurations) + n_prompts
                 + language_free.sum() + tau_free.sum() + (n_prompts if two_pl else 0))
    n_observations = int(used["n_valid"].sum())

    summary = {
        "model": options.model,
        "reference_language": options.reference_language,
        "anchors": sorted(options.anchors),
        "tau_scale": options.tau_scale,
        "cells": int(len(used)),
        "cells_without_valid_pass": int(len(cells) - len(used)),
        "observations": n_observations,
        "parameters": n_free,
        "log_likelihood": log_likelihood,
        "log_posterior": -loss.item(),
        "aic": 2 * n_free - 2 * log_likelihood,
        "bic": n_free * math.log(max(len(used), 1)) - 2 * log_likelihood,
        "iterations": int(iterations),
        "max_abs_gradient": gradient_norm,
        "converged": bool(converged),
    }
    log.info("IRT %s: %d cells, %d passes, %d parameters, log-likelihood %.2f, %d iterations, "
             "max |gradient| %.1e", options.model, len(used), n_observations, n_free, log_likelihood,
             iterations, gradient_norm)

    alpha_values = log_alpha.exp() if two_pl else torch.ones(n_prompts, dtype=torch.float64)
    parameters = _long_table(
        configurations, prompts, languages, reference, anchors,
        theta=theta, delta=delta * language_free, beta=beta, gamma=gamma * language_free,
        tau=tau * tau_free, alpha=alpha_values,
    )
    return FitResult(parameters=parameters, summary=summary)


def _log_binomial_coefficients(cells: pd.DataFrame) -> float:
    from scipy.special import gammaln

    n = cells["n_valid"].to_numpy(dtype=float)
    k = cells["n_safe"].to_numpy(dtype=float)
    return float(np.sum(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)))


def _long_table(configurations, prompts, languages, reference, anchor_positions, **values) -> pd.DataFrame:
    """Lay the estimates out as one row per parameter."""
    estimates = {name: tensor.detach().numpy() for name, tensor in values.items()}
    rows = []
    for position, configuration in enumerate(configurations):
        rows.append(("theta", configuration, None, None, estimates["theta"][position], False))
        for column, language in enumerate(languages):
            if column != reference:
                rows.append(("delta", configuration, None, language, estimates["delta"][position, column], False))
    for position, prompt in enumerate(prompts):
        rows.append(("beta", None, prompt, None, estimates["beta"][position], False))
        rows.append(("alpha", None, prompt, None, estimates["alpha"][position], False))
        for column, language in enumerate(languages):
            if column != reference:
                anchored = position in anchor_positions
                rows.append(("tau", None, prompt, language, estimates["tau"][position, column], anchored))
    for column, language in enumerate(languages):
        if column != reference:
            rows.append(("gamma", None, None, language, estimates["gamma"][column], False))

    table = pd.DataFrame(rows, columns=["parameter", "configuration", "id", "language", "estimate", "fixed"])
    table["id"] = table["id"].astype("Int64")
    table["estimate"] = table["estimate"].astype(float)
    return table
