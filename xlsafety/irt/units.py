"""The unit of the location terms in models with a free discrimination.

The likelihood is unchanged when every discrimination a_i is divided by c
and every location term (theta, delta, beta, gamma, tau, and the graded
model's threshold gaps) is multiplied by c. Only the priors pick c. At the
MultiJail shape their pick missed the unit of simulated truths by 1 to 6%
(scale.py) and stretched every location by as much, so the narrow
intervals of gamma missed the truth too often. The data identify the
locations only up to that factor.

The fit therefore reports the point of that orbit where the mean of log a
over the free discriminations equals the prior's location
(LOG_ALPHA_PRIOR[0]): locations in the unit of a prompt of typical
discrimination. With m that mean and k = m - LOG_ALPHA_PRIOR[0],

    x' = x exp(k) for a location x,   log a' = log a - k,   log s' = log s + k for a gap s.

Predictions are unchanged. The Laplace variances are those of these
functions of the parameters (the delta method), with v = H^-1 w the
covariance of every parameter with m (w averages the free log a):

    Var(x') = exp(2k) (Var x + 2 x v[x] + x^2 w'v),
    Var(log a') = Var(log a) - 2 v[log a] + w'v,
    Var(log s') = Var(log s) + 2 v[log s] + w'v.

Simulations draw their truth in the same unit (simulate.py).
"""

import numpy as np
import torch

from xlsafety.irt.centring import centre_estimates
from xlsafety.irt.design import LOG_ALPHA_PRIOR, Design
from xlsafety.irt.hessian import StructuredHessian

GAP_BLOCKS = ("log_step_2", "log_step_3", "log_step_5")


def free_log_alpha(design: Design) -> np.ndarray:
    """Return the positions of the free log a in the free parameter vector (empty without a free a)."""
    return _free_positions_of(design, ["log_alpha"])


def unit_shift(design: Design, free: torch.Tensor) -> float:
    """Return k, how far the mean free log a at `free` lies above the prior's location."""
    alphas = free_log_alpha(design)
    return float(free[alphas].mean()) - LOG_ALPHA_PRIOR[0] if len(alphas) else 0.0


def rescale_estimates(design: Design, free: torch.Tensor) -> torch.Tensor:
    """Return `free` moved along the orbit to the point where the mean free log a is the prior's location."""
    k = unit_shift(design, free)
    if k == 0.0:
        return free.clone()

    moved = free.clone()
    moved[design.location_mask()] *= np.exp(k)
    moved[free_log_alpha(design)] -= k
    moved[_free_positions_of(design, GAP_BLOCKS)] += k
    return moved


def rescale_variances(design: Design, hessian: StructuredHessian, free: torch.Tensor,
                      variance: torch.Tensor) -> torch.Tensor:
    """Return the Laplace variances of the rescaled estimates.

    `free` is the MAP and `variance` the variances of the language-centred
    parameters (centring.py), which the rescaling multiplies.
    """
    alphas = free_log_alpha(design)
    if not len(alphas):
        return variance

    averaging = torch.zeros(design.free_count, dtype=torch.float64)
    averaging[alphas] = 1.0 / len(alphas)
    # Covariance of each parameter with m; centred like the estimates, because centring is linear.
    with_mean = centre_estimates(design, hessian.solve(averaging))
    mean_variance = float(averaging @ with_mean)
    centred = centre_estimates(design, free)
    k = unit_shift(design, free)

    rescaled = variance.clone()
    locations = design.location_mask()
    x = centred[locations]
    rescaled[locations] = np.exp(2 * k) * (variance[locations] + 2 * x * with_mean[locations] + x**2 * mean_variance)
    rescaled[alphas] = variance[alphas] - 2 * with_mean[alphas] + mean_variance
    gaps = _free_positions_of(design, GAP_BLOCKS)
    rescaled[gaps] = variance[gaps] + 2 * with_mean[gaps] + mean_variance
    return rescaled


def _free_positions_of(design: Design, names) -> np.ndarray:
    """Return the free-vector positions of the free parameters of the blocks `names` that the design has."""
    in_blocks = np.zeros(design.size, dtype=bool)
    for name in names:
        block = design.blocks.get(name)
        if block is not None:
            in_blocks[block.offset:block.offset + block.size] = block.free.ravel()
    return np.flatnonzero(in_blocks[design.free_positions.numpy()])
