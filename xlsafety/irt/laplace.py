"""Laplace standard errors: the square roots of the diagonal of the inverse Hessian at the MAP."""

import time
from dataclasses import dataclass

import torch

from xlsafety.irt.centring import centre_variances
from xlsafety.irt.hessian import StructuredHessian
from xlsafety.irt.objective import Objective
from xlsafety.irt.units import rescale_variances


@dataclass
class Laplace:
    """Standard errors of the free parameters and how they were computed."""

    standard_errors: torch.Tensor
    summary: dict


def laplace_standard_errors(objective: Objective, free: torch.Tensor) -> Laplace:
    """Return the Laplace standard error of every free parameter at the MAP `free`.

    The Hessian is the exact Hessian of the negative log posterior, factorised
    through its (prompt, language) block structure (hessian.py). The
    variances are the exact diagonal of its inverse, so they include the
    correlations between families (gamma with tau and delta, beta with theta
    and alpha), including the shifts that only the priors pin: theta + c with
    beta + c, and delta_jL + c with gamma_L + c for every j.

    Because of those shared shifts, the errors of one fit are correlated and
    its coverage is a poor measure. Calibration is judged on simulated data
    with coverage pooled over seeds (tests/test_irt_recovery.py and
    benchmarks/irt_benchmark.py --coverage-seeds). That matters most for
    gamma, whose coverage in one fit with 9 free gammas can only be k/9.

    Delta and gamma get the variances of their language-centred versions
    (centring.py), which leave out the shift delta_jL + c with gamma_L + c
    that the data cannot see. In models with a free discrimination, all
    variances are those of the estimates in the unit of units.py, which
    leaves out the overall scale that the data cannot see either.
    """
    started = time.perf_counter()
    hessian = StructuredHessian(objective, free, exact=True)
    variance = centre_variances(objective.design, hessian, hessian.inverse_diagonal())
    variance = rescale_variances(objective.design, hessian, free, variance)

    summary = {
        "method": "exact Hessian of the negative log posterior, inverted through a Schur complement "
                  "over (prompt, language) pairs; delta and gamma centred per language; "
                  "locations in the unit where the mean log discrimination is its prior mean",
        "dense_parameters": int(hessian.partition.kept.numel()),
        "pair_parameters": int(hessian.partition.eliminated.numel()),
        "regularised": hessian.regularised,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return Laplace(variance.clamp_min(0).sqrt(), summary)
