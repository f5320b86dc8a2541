"""Simulated cells with known parameters, for recovery tests and benchmarks.

The parameters are drawn as in the priors of models.py, except tau. Tau is
drawn from a scaled Student t with 3 degrees of freedom, which is
heavy-tailed like the Cauchy prior but has fewer values so extreme that their
cells carry no information. `Simulation.tau_scale` is the Cauchy scale that matches that t
(see CAUCHY_SCALE_PER_T3_SCALE), the value to give the fit's tau_scale.

Delta is centred in each language over the configurations. The likelihood
is unchanged when every delta of a language and its gamma shift together,
so the data identify gamma only as the language's difficulty for the
average configuration, which is what the fit reports (centring.py).
Uncentred draws would add their mean (sd 0.5 / sqrt(configurations)) to
gamma as an error that no estimator can remove. Centred draws make the true
gamma the quantity that the fit estimates.

For the same reason theta and beta are shifted by the mean beta, and the
truth is then rescaled to the unit the fit reports (units.py): the mean of
log a over the prompts is the prior's location, and the locations are
multiplied by the factor that divides a.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from xlsafety.irt.design import LOG_ALPHA_PRIOR
from xlsafety.irt.models import SCORE_COLUMNS

# The Cauchy scale s for which E[2 z^2 / (1 + z^2)] = 1 with z = x / s and
# x ~ 0.3 * t(3), divided by 0.3. At that s the Cauchy prior's score balances
# the simulated spread of tau, as it does for tau drawn from the prior itself
# (computed once by root finding over 2 million t(3) draws).
CAUCHY_SCALE_PER_T3_SCALE = 0.717


@dataclass
class Simulation:
    """Simulated cells and the true parameters, indexed like the labels below."""

    cells: pd.DataFrame
    truth: dict[str, np.ndarray]
    configurations: list[str]
    prompts: list[int]
    languages: list[str]
    anchors: list[int]
    tau_scale: float


def simulate_cells(seed: int, configurations: int = 24, prompts: int = 40, languages: int = 4, passes: int = 10,
                   anchors: int = 0, tau_scale: float = 0.3, missing_share: float = 0.0,
                   graded: bool = False) -> Simulation:
    """Draw parameters and binomial (or, with graded, per-score) cells from the multigroup model.

    The first language is the reference "en" and the first `anchors` prompts
    are anchors (tau = 0). A share `missing_share` of cells is dropped at
    random. With graded, scores 1..5 follow the graded response model and the
    cells get n_score_1..n_score_5; n_safe counts scores 4 and 5 either way.
    """
    rng = np.random.default_rng(seed)
    configuration_labels = [f"c{j:03d}_x" for j in range(configurations)]
    language_labels = ["en"] + [f"l{column:02d}" for column in range(1, languages)]

    truth = {
        "theta": rng.normal(0, 1, configurations),
        "delta": np.c_[np.zeros(configurations), rng.normal(0, 0.5, (configurations, languages - 1))],
        "beta": rng.normal(0, 1, prompts),
        "gamma": np.r_[0.0, rng.normal(0, 1, languages - 1)],
        "tau": np.c_[np.zeros(prompts), tau_scale * rng.standard_t(3, (prompts, languages - 1))],
        "alpha": rng.lognormal(0.5, 0.5, prompts),
        "steps": np.exp(rng.normal(0, 0.3, (prompts, 3))),
    }
    truth["tau"][:anchors, :] = 0.0
    truth["delta"] -= truth["delta"].mean(axis=0)
    mean_beta = truth["beta"].mean()
    truth["theta"] -= mean_beta
    truth["beta"] -= mean_beta
    _to_typical_unit(truth)

    j, i, g = (axis.ravel() for axis in np.meshgrid(np.arange(configurations), np.arange(prompts),
                                                   np.arange(languages), indexing="ij"))
    u = truth["theta"][j] + truth["delta"][j, g] - truth["beta"][i] - truth["gamma"][g] - truth["tau"][i, g]
    cells = pd.DataFrame({
        "configuration": np.array(configuration_labels, dtype=object)[j],
        "id": i.astype(np.int64),
        "language": np.array(language_labels, dtype=object)[g],
        "n_passes": passes,
        "n_valid": passes,
    })
    if graded:
        counts = _graded_counts(rng, truth, u, i, passes)
        for position, column in enumerate(SCORE_COLUMNS):
            cells[column] = counts[:, position]
        cells["n_safe"] = counts[:, 3] + counts[:, 4]
    else:
        cells["n_safe"] = rng.binomial(passes, _sigmoid(truth["alpha"][i] * u))

    if missing_share > 0:
        cells = cells[rng.random(len(cells)) >= missing_share].reset_index(drop=True)
    return Simulation(cells, truth, configuration_labels, list(range(prompts)), language_labels,
                      list(range(anchors)), CAUCHY_SCALE_PER_T3_SCALE * tau_scale)


def _to_typical_unit(truth: dict[str, np.ndarray]) -> None:
    """Rescale the truth to the unit the fit reports (units.py): mean log a at the prior's location.

    The predictors, and so the simulated cells, are unchanged.
    """
    k = np.log(truth["alpha"]).mean() - LOG_ALPHA_PRIOR[0]
    truth["alpha"] = truth["alpha"] * np.exp(-k)
    for name in ("theta", "delta", "beta", "gamma", "tau", "steps"):
        truth[name] = truth[name] * np.exp(k)


def _graded_counts(rng, truth, u, i, passes):
    step_2, step_3, step_5 = truth["steps"][i].T
    offsets = np.stack([-(step_2 + step_3), -step_3, np.zeros_like(u), step_5], axis=1)
    at_least = _sigmoid(truth["alpha"][i, None] * (u[:, None] - offsets))
    bounds = np.c_[np.ones(len(u)), at_least, np.zeros(len(u))]
    probabilities = np.clip(bounds[:, :-1] - bounds[:, 1:], 0, None)
    probabilities /= probabilities.sum(1, keepdims=True)
    return rng.multinomial(passes, probabilities)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))
