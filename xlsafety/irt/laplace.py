"""Laplace standard errors: the square roots of the diagonal of the inverse Hessian at the MAP."""

import time
from dataclasses import dataclass

import torch

from xlsafety.irt.centring import centre_variances
from xlsafety.irt.hessian import StructuredHessian
from xlsafety.irt.objective import Objective
from xlsafety.irt.units import free_log_alpha, rescale_variances


@dataclass
class Laplace:
    """Standard errors of the free parameters and how they were computed."""

    standard_errors: torch.Tensor
    summary: dict


def laplace_standard_errors(objective: Objective, free: torch.Tensor) -> Laplace:
    """Return the Laplace standard error of every free parameter at the MAP `free`.

    The Hessian is the exact Hessian of the negative log posterior, factorised
    through its (prompt, language) block structure (hessian.py). The
    variances come from the exact inverse, so they include the correlations
    between families (gamma with tau and delta, beta with theta and alpha).

    They are the variances of the reported estimates, which leave out the
    directions that the data cannot see: theta and beta relative to the mean
    beta, delta and gamma centred per language (centring.py), and, in models
    with a free discrimination, the locations in the unit of units.py.

    Calibration is judged on simulated data with coverage pooled over seeds
    (tests/test_irt_recovery.py and benchmarks/irt_benchmark.py
    --coverage-seeds), because one fit has few gammas: with 9 free gammas its
    coverage can only be k/9.
    """
    started = time.perf_counter()
    hessian = StructuredHessian(objective, free, exact=True)
    variance = centre_variances(objective.design, hessian, hessian.inverse_diagonal())
    variance = rescale_variances(objective.design, hessian, free, variance)

    summary = {
        "method": _method(objective.design),
        "dense_parameters": int(hessian.partition.kept.numel()),
        "pair_parameters": int(hessian.partition.eliminated.numel()),
        "regularised": hessian.regularised,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return Laplace(variance.clamp_min(0).sqrt(), summary)


def _method(design) -> str:
    """Describe how the variances were computed and what the reported estimates are relative to."""
    parts = ["exact Hessian of the negative log posterior, inverted through a Schur complement over "
             "(prompt, language) pairs", "theta and beta relative to the mean beta"]
    if "delta" in design.blocks:
        parts.append("delta and gamma centred per language")
    if len(free_log_alpha(design)):
        parts.append("locations in the unit where the mean log discrimination is its prior mean")
    return "; ".join(parts)
