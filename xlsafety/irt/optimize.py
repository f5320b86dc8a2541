"""MAP estimation by full-batch L-BFGS in float64.

The optimiser is SciPy's L-BFGS-B (without bounds) in whitened coordinates
z = M' x, where H = M M' is the factorised Gauss-Newton Hessian at the start
of a stage (hessian.py). The problem in x is badly conditioned: the priors
alone pin shifts such as (theta + c, beta + c), and prompt-by-language terms
carry a hundred times fewer passes than configuration terms. Plain L-BFGS
needs several hundred iterations at the MultiJail shape; in z, where the
Hessian is close to the identity, it needs a few dozen. The change of
coordinates is linear, so it does not change the optimum.

Convergence is judged in the original parameters: the fit has converged when
max |gradient| of the negative log posterior is at most `gradient_tolerance`.
"""

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from xlsafety.irt.hessian import StructuredHessian
from xlsafety.irt.objective import Objective

log = logging.getLogger(__name__)

# Iteration budgets of the stages before the last one, which gets the rest, and
# the L-BFGS memory. The curvature at the start can be far from the curvature
# at the optimum (cells that end near P = 0 or 1 lose most of it), so each
# stage restarts L-BFGS with the Hessian refreshed at its starting point.
EARLY_STAGES = (10, 20, 40, 80)
HISTORY = 20


@dataclass
class Convergence:
    """Outcome of an L-BFGS run."""

    converged: bool
    iterations: int
    evaluations: int
    max_abs_gradient: float
    loss_change: float
    message: str


class _Whitened:
    """The objective in whitened coordinates z = M' x, with the last evaluation cached."""

    def __init__(self, objective: Objective, hessian: StructuredHessian):
        self.objective = objective
        self.hessian = hessian
        self.evaluations = 0
        self.last_z = None
        self.last_value = None
        self.last_gradient = None

    def __call__(self, z: np.ndarray):
        x = self.hessian.unwhiten(torch.from_numpy(z))
        value, gradient = self.objective.value_and_gradient(x)
        self.evaluations += 1
        self.last_z = z.copy()
        self.last_value = value
        self.last_gradient = gradient
        return value, self.hessian.whiten_gradient(gradient).numpy()

    def gradient_at(self, z: np.ndarray) -> torch.Tensor:
        """Return the gradient in the original parameters at z, reusing the cached evaluation."""
        if self.last_z is None or not np.array_equal(z, self.last_z):
            self(z)
        return self.last_gradient


def minimise(objective: Objective, start: torch.Tensor, max_iterations: int,
             gradient_tolerance: float) -> tuple[torch.Tensor, float, Convergence]:
    """Minimise `objective` from `start`; return the free parameters, the loss and how the run ended."""
    x = start.clone()
    iterations = evaluations = 0
    for budget in _stage_budgets(max_iterations):
        x, value, result, whitened, losses = _run_stage(objective, x, budget, gradient_tolerance)
        iterations += int(result.nit)
        evaluations += whitened.evaluations
        max_gradient = whitened.gradient_at(result.x).abs().max().item()
        if max_gradient <= gradient_tolerance:
            break

    loss_change = float(losses[-2] - losses[-1]) if len(losses) > 1 else float("nan")
    converged = max_gradient <= gradient_tolerance
    # The callback stops SciPy once the gradient is small enough, and SciPy then reports that
    # the callback raised StopIteration, which reads like an error in fit.json.
    message = "max |gradient| reached the tolerance" if converged else str(result.message)
    convergence = Convergence(converged, iterations, evaluations, max_gradient, loss_change, message)
    if not converged:
        advice = ("raise irt.max_iterations" if iterations >= max_iterations
                  else "the loss stopped decreasing at float64 precision, so the tolerance may be too tight")
        log.warning("IRT fit stopped after %d iterations without converging: max |gradient| %.2e > %.0e (%s); %s",
                    iterations, max_gradient, gradient_tolerance, result.message, advice)
    return x, value, convergence


def _stage_budgets(max_iterations: int) -> list[int]:
    budgets, left = [], max_iterations
    for budget in EARLY_STAGES:
        if left <= budget:
            break
        budgets.append(budget)
        left -= budget
    return budgets + [left]


def _run_stage(objective, x, budget, gradient_tolerance):
    whitened = _Whitened(objective, StructuredHessian(objective, x, exact=False))
    losses: list[float] = []

    def callback(intermediate_result):
        losses.append(float(intermediate_result.fun))
        if whitened.gradient_at(intermediate_result.x).abs().max().item() <= gradient_tolerance:
            raise StopIteration

    z0 = whitened.hessian.whiten(x).numpy()
    with warnings.catch_warnings():
        # SciPy warns when it stops at the line-search limit, which is how a run
        # at float64 precision usually ends; the gradient check below decides.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = minimize(whitened, z0, jac=True, method="L-BFGS-B", callback=callback,
                          options={"maxiter": budget, "maxfun": 10 * budget, "maxcor": HISTORY,
                                   "ftol": 0.0, "gtol": 0.0, "maxls": 40})
    x = whitened.hessian.unwhiten(torch.from_numpy(result.x))
    value = whitened(result.x)[0]
    if not losses:
        losses.append(value)
    return x, value, result, whitened, losses
