"""Locations reported on their identified origin: beta centred, and delta centred in each language.

In the multigroup models the likelihood is unchanged when every delta_jL of
a language L and its gamma_L shift by the same amount c. The priors pick one
point on that line, but the data determine only

    gamma_L - m_L   and   delta_jL - m_L,

with m_L the mean of delta_jL over the configurations that have cells in L.
The fit reports these: gamma_L becomes the difficulty of L for the average
configuration, and each delta_jL how far configuration j departs from that
average. theta + delta - gamma, and so every prediction, is unchanged.

Their Laplace variances come from the dense block S of the factorised
Hessian (hessian.py), which holds theta, delta, beta, gamma and alpha: with
v_L the vector that averages the deltas of L and w = S^-1 v_L,

    Var(x - m_L) = Var(x) - 2 w[x] + v_L' w    for x = gamma_L or delta_jL.

One triangular solve per language keeps this cheap at any size.

In every model the likelihood is also unchanged when every theta_j and
every beta_i shift by the same amount. Only the priors pin that shift (sd
about 0.05 at the MultiJail shape), and it made theta's intervals wider
than its errors. The fit reports theta_j - b and beta_i - b, with b the mean
of the betas that have cells: prompt hardness relative to the average
prompt, and each configuration's robustness against that average prompt.
Their variances come from u = H^-1 v_b, with v_b the vector that averages
those betas (one solve through the factorised Hessian), as above.
"""

import numpy as np
import torch

from xlsafety.irt.design import Design
from xlsafety.irt.hessian import StructuredHessian


def language_groups(design: Design) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Return, per free language, the free positions of its deltas, those with cells, and of its gamma.

    Positions index the free parameter vector. Empty for models without language terms.
    """
    if "delta" not in design.blocks:
        return []
    delta, gamma = design.blocks["delta"], design.blocks["gamma"]
    free_of = design.free_index().numpy()
    read = np.unique(design.local_index[:, design.columns.index("delta")].numpy())

    groups = []
    for language in range(len(design.languages)):
        if language == design.reference:
            continue
        positions = delta.positions(np.arange(delta.shape[0]), np.full(delta.shape[0], language))
        with_cells = np.intersect1d(positions, read)
        groups.append((free_of[positions], free_of[with_cells], int(free_of[gamma.offset + language])))
    return groups


def prompt_groups(design: Design) -> tuple[np.ndarray, np.ndarray]:
    """Return the free positions of theta and beta, and of the betas that some cell reads."""
    free_of = design.free_index().numpy()
    theta, beta = design.blocks["theta"], design.blocks["beta"]
    shifted = free_of[np.r_[theta.offset:theta.offset + theta.size, beta.offset:beta.offset + beta.size]]
    read = np.unique(design.local_index[:, design.columns.index("beta")].numpy())
    with_cells = free_of[read]
    return shifted[shifted >= 0], with_cells[with_cells >= 0]


def centre_estimates(design: Design, free: torch.Tensor) -> torch.Tensor:
    """Return `free` with the mean beta subtracted from every theta and beta, and each language's mean delta
    subtracted from its deltas and its gamma.

    The means are over the betas that have cells and over the configurations with cells in the language.
    """
    centred = free.clone()
    shifted, with_cells = prompt_groups(design)
    centred[shifted] -= free[with_cells].mean()
    for deltas, with_cells, gamma in language_groups(design):
        if not len(with_cells):
            continue
        mean = free[with_cells].mean()
        centred[deltas] -= mean
        centred[gamma] -= mean
    return centred


def centre_variances(design: Design, hessian: StructuredHessian, variance: torch.Tensor) -> torch.Tensor:
    """Return the Laplace variances with those of theta, beta, delta and gamma replaced by their centred versions."""
    centred = variance.clone()
    shifted, with_cells = prompt_groups(design)
    averaging = torch.zeros(design.free_count, dtype=torch.float64)
    averaging[with_cells] = 1.0 / len(with_cells)
    covariance = hessian.solve(averaging)
    centred[shifted] = variance[shifted] - 2 * covariance[shifted] + float(averaging @ covariance)

    # Position in the dense block S of each free parameter (-1 outside it).
    kept_of_free = hessian.partition.kept_of_position[design.free_positions]
    for deltas, with_cells, gamma in language_groups(design):
        if not len(with_cells):
            continue
        averaging = torch.zeros(hessian.s_factor.shape[0], 1, dtype=torch.float64)
        averaging[kept_of_free[with_cells], 0] = 1.0 / len(with_cells)
        covariance = torch.cholesky_solve(averaging, hessian.s_factor)[:, 0]
        mean_variance = float(averaging[:, 0] @ covariance)
        for positions in (deltas, np.array([gamma])):
            targets = torch.as_tensor(positions)
            centred[targets] = variance[targets] - 2 * covariance[kept_of_free[targets]] + mean_variance
    return centred
