"""Fit options, the fit itself and its summary."""

import ctypes
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from xlsafety.irt.centring import centre_estimates
from xlsafety.irt.design import build_design, validate_cells
from xlsafety.irt.laplace import laplace_standard_errors
from xlsafety.irt.models import model_spec
from xlsafety.irt.objective import Objective
from xlsafety.irt.optimize import Convergence, minimise
from xlsafety.irt.scale import refine_scale
from xlsafety.irt.table import degenerate_units, parameter_table
from xlsafety.irt.units import rescale_estimates, unit_shift

log = logging.getLogger(__name__)

# Below this many cells a second thread slows the fit down. On 2 cores, the
# MultiJail shape (192,150 cells) took 4.9 s with one thread and 6.4 s with
# two; 6 million cells took 225 s with two against about 360 s with one. The
# crossover between those sizes was not measured more closely. Fits of this
# size also make glibc keep freed memory (_keep_freed_memory).
MULTI_THREAD_CELLS = 1_000_000

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


@dataclass
class FitOptions:
    """Options of one IRT fit.

    model: one of MODELS (1pl, 2pl, multigroup-1pl, multigroup-2pl, grm).
    reference_language: language with gamma = delta = tau = 0.
    anchors: prompt ids whose tau is 0 in every language; ids without data are
        ignored with a warning.
    tau_scale: scale of the Cauchy prior on tau.
    max_iterations: L-BFGS iteration limit.
    gradient_tolerance: the fit has converged when max |gradient| of the
        negative log posterior is at most this.
    scale_correction: add the scale term of design.py, with each location
        term counted by the share of its precision that comes from the data
        (scale.py). In models with a free a, the overall scale is then the
        marginal posterior mode along the one direction that the likelihood
        leaves open. False gives the plain joint MAP, whose locations are
        shrunk towards 0.
    standard_errors: compute Laplace standard errors and 95% intervals.
    threads: the maximum number of torch CPU threads the fit uses (None: torch's setting).
        Designs under MULTI_THREAD_CELLS cells use one thread, because their
        per-cell operations are too small to gain from more.
    """

    model: str = "multigroup-2pl"
    reference_language: str = "en"
    anchors: list[int] = field(default_factory=list)
    tau_scale: float = 0.5
    max_iterations: int = 1000
    gradient_tolerance: float = 1e-3
    scale_correction: bool = True
    standard_errors: bool = True
    threads: int | None = None


@dataclass
class FitResult:
    """Estimates in long form and the fit's summary (convergence, fit statistics, degenerate units)."""

    parameters: pd.DataFrame
    summary: dict


def fit(cells: pd.DataFrame, options: FitOptions | None = None) -> FitResult:
    """Fit an IRT model by MAP to binomial cells, with Laplace standard errors and 95% intervals.

    With `scale_correction` (the default) the overall scale of models with a
    free discrimination is the marginal posterior mode rather than the joint
    MAP (see design.py and scale.py). That costs a second, short L-BFGS run
    from one Newton step, after the exact Hessian at the first optimum.

    `cells` has one row per (configuration, prompt, language) with columns
    configuration, id, language, n_valid and n_safe. The graded model also
    needs n_score_1..n_score_5, the counts of valid passes per judge score.
    Cells without a valid pass are ignored, and missing cells are allowed.
    """
    options = options or FitOptions()
    spec = model_spec(options.model)
    _check_options(options)
    used = validate_cells(cells, spec.graded)

    if len(used) >= MULTI_THREAD_CELLS:
        _keep_freed_memory()
    with _torch_threads(_fit_threads(options.threads, len(used))):
        design = build_design(used, spec, options.reference_language, options.anchors, options.tau_scale,
                              options.scale_correction)
        objective = Objective(design)

        started = time.perf_counter()
        free, _, convergence = minimise(objective, design.initial, options.max_iterations,
                                        options.gradient_tolerance)
        scale_record = None
        # An unconverged first fit keeps the K scale term, because its curvature is not the posterior's.
        if design.has_scale_orbit and convergence.converged:
            free, convergence, scale_record = _refine(objective, free, convergence, options)
        map_seconds = time.perf_counter() - started

        laplace = laplace_standard_errors(objective, free) if options.standard_errors else None
        log_likelihood = -objective.negative_log_likelihood(free)
        log_prior = -objective.prior(free, with_scale_term=False)[0]

    # Reported relative to what the data identify: delta centred per language, theta and beta
    # relative to the mean beta (centring.py), and locations in the unit of a typical discrimination (units.py).
    reported = rescale_estimates(design, centre_estimates(design, free))
    parameters = parameter_table(design, reported, laplace.standard_errors if laplace else None)
    summary = _summary(options, design, convergence, log_likelihood, log_prior, map_seconds, laplace)
    summary["scale_term"] = scale_record
    summary["unit_shift"] = unit_shift(design, free)
    summary["cells_without_valid_pass"] = int(len(cells) - len(used))
    summary["degenerate"] = degenerate_units(used, cells)
    log.info("IRT %s: %d cells, %d passes, %d parameters, log-likelihood %.2f; %d iterations in %.1f s, "
             "max |gradient| %.1e, converged %s", options.model, design.cells, design.passes, design.free_count,
             log_likelihood, convergence.iterations, map_seconds, convergence.max_abs_gradient,
             convergence.converged)
    return FitResult(parameters=parameters, summary=summary)


def _refine(objective, free, first: Convergence, options: FitOptions):
    """Refit with the K_eff scale term by Newton steps (scale.py), then by L-BFGS if they fall short."""
    free, record = refine_scale(objective, free, options.gradient_tolerance)
    if record["converged"]:
        gradient = objective.value_and_gradient(free)[1].abs().max().item()
        return free, replace(first, max_abs_gradient=gradient), record

    budget = max(options.max_iterations - first.iterations, 1)
    free, _, last = minimise(objective, free, budget, options.gradient_tolerance)
    return free, _combined(first, last), record


def _combined(first: Convergence, last: Convergence) -> Convergence:
    """Return the convergence of two optimisations in a row, with their counts added and the rest from the last."""
    return replace(last, iterations=first.iterations + last.iterations,
                   evaluations=first.evaluations + last.evaluations)


def _summary(options, design, convergence, log_likelihood, log_prior, map_seconds, laplace) -> dict:
    """Return the fit statistics and convergence record that go to fit.json.

    The log-likelihood is that of the individual passes, and the log posterior
    leaves out the priors' normalising constants and the scale term. `rows`
    is the number of those passes (one Bernoulli or categorical row each),
    the n of BIC; `cells` counts the (configuration, prompt, language) cells.
    """
    parameters = design.free_count
    return {
        "model": options.model,
        "reference_language": options.reference_language,
        "anchors": design.anchors,
        "tau_scale": options.tau_scale,
        "scale_correction": options.scale_correction,
        "cells": design.cells,
        "passes": design.passes,
        "rows": design.passes,
        "parameters": parameters,
        "log_likelihood": log_likelihood,
        "log_posterior": log_likelihood + log_prior,
        "aic": 2 * parameters - 2 * log_likelihood,
        "bic": parameters * math.log(design.passes) - 2 * log_likelihood,
        "converged": convergence.converged,
        "iterations": convergence.iterations,
        "evaluations": convergence.evaluations,
        "max_abs_gradient": convergence.max_abs_gradient,
        "loss_change": convergence.loss_change,
        "gradient_tolerance": options.gradient_tolerance,
        "optimizer_message": convergence.message,
        "map_seconds": round(map_seconds, 3),
        "laplace": laplace.summary if laplace else None,
    }


def _check_options(options: FitOptions) -> None:
    if not (_is_number(options.tau_scale) and 0 < options.tau_scale < math.inf):
        raise ValueError(f"tau_scale must be a positive finite number, got {options.tau_scale!r}")
    if not (isinstance(options.max_iterations, int) and options.max_iterations >= 1):
        raise ValueError(f"max_iterations must be a positive integer, got {options.max_iterations!r}")
    if not (_is_number(options.gradient_tolerance) and options.gradient_tolerance > 0):
        raise ValueError(f"gradient_tolerance must be a positive number, got {options.gradient_tolerance!r}")
    if options.threads is not None and options.threads < 1:
        raise ValueError(f"threads must be at least 1 or None, got {options.threads!r}")
    if not isinstance(options.anchors, (list, tuple)):
        raise ValueError(f"anchors must be a list of prompt ids, got {options.anchors!r}")
    bad = [anchor for anchor in options.anchors if isinstance(anchor, bool) or not isinstance(anchor, (int, np.integer))]
    if bad:
        raise ValueError(f"anchors must be integer prompt ids, got {bad}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _fit_threads(threads: int | None, cells: int) -> int:
    """Return the torch threads of a fit of `cells` cells: one for a small design, else `threads`."""
    if cells < MULTI_THREAD_CELLS:
        return 1
    return threads if threads is not None else torch.get_num_threads()


def _keep_freed_memory() -> None:
    """Make glibc's malloc serve every block from its heap and keep freed memory for reuse.

    By default glibc maps each block above 32 MB afresh and unmaps it when it
    is freed, so every temporary of a large fit (48 MB per vector at 6 million
    cells) is faulted into memory page by page again. At 6 million cells on
    the 2-core test machine this halved the wall time (157 s against 317 s)
    and raised the peak resident memory from 4.2 to 5.1 GB. The setting holds
    for the rest of the process. Other C libraries are left as they are.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    if libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1):
        log.info("large fit: glibc malloc now keeps freed memory for reuse")


@contextmanager
def _torch_threads(threads: int | None):
    """Run the block with `threads` torch threads, restoring the previous setting afterwards."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
