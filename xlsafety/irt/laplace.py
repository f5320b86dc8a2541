"""Laplace standard errors: the square roots of the diagonal of the inverse Hessian at the MAP."""

import time
from dataclasses import dataclass

import torch

from xlsafety.irt.hessian import StructuredHessian
from xlsafety.irt.objective import Objective


@dataclass
class Laplace:
    """Standard errors of the free parameters and how they were computed."""

    standard_errors: torch.Tensor
    summary: dict


def laplace_standard_errors(objective: Objective, free: torch.Tensor) -> Laplace:
    """Return the Laplace standard error of every free parameter at the MAP `free`.

    The Hessian is the exact Hessian of the negative log posterior, factorised
    through its (prompt, language) block structure (hessian.py).
    """
    started = time.perf_counter()
    hessian = StructuredHessian(objective, free, exact=True)
    variance = hessian.inverse_diagonal()

    summary = {
        "method": "exact Hessian of the negative log posterior, inverted through a Schur complement "
                  "over (prompt, language) pairs",
        "dense_parameters": int(hessian.partition.kept.numel()),
        "pair_parameters": int(hessian.partition.eliminated.numel()),
        "regularised": hessian.regularised,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return Laplace(variance.clamp_min(0).sqrt(), summary)
