"""The Hessian of the negative log posterior, assembled and factorised by its block structure.

Parameters that belong to a single (prompt, language) pair (tau in the
multigroup models, the item parameters in the unidimensional ones) form the
set E. No cell reads two pairs, so the E-by-E block D of the Hessian is
block-diagonal with one small block per pair. With R the other parameters and
B the E-by-R block,

    H = [[D, B], [B', A]] = M M',    M = [[L_D, 0], [W', L_S]],

where D = L_D L_D', W = L_D^-1 B and L_S is the Cholesky factor of the Schur
complement S = A - B' D^-1 B. Each pair's row of B touches only the R
parameters of its own cells, so W is stored pair by pair over those columns,
and only S, of size |R| (about 1,250 at the MultiJail shape: theta, delta,
beta, gamma, alpha), is dense. The factor M serves both as the L-BFGS
preconditioner (optimize.py) and for the Laplace variances, the diagonal of

    H^-1:  Var(R) = diag(S^-1),   Var(E) = diag(D^-1 + D^-1 B S^-1 B' D^-1).

E parameters that no cell reads (a pair without data) depend on their prior
alone and are scaled by it.
"""

import logging

import numpy as np
import pandas as pd
import torch

from xlsafety.irt.objective import Objective

log = logging.getLogger(__name__)

# Cells per chunk when assembling the Hessian, and pairs per chunk when
# updating S and the variances; both bound the memory of those steps.
CELL_CHUNK = 250_000
PAIR_CHUNK = 512


class StructuredHessian:
    """The factorised Hessian H = M M' of the negative log posterior at one point.

    exact: use the exact Hessian. Otherwise use the Gauss-Newton part of the
    likelihood with the prior's curvature at zero. That matrix is positive
    definite, so it suits a preconditioner away from the optimum.
    """

    def __init__(self, objective: Objective, free: torch.Tensor, exact: bool = True):
        layout = objective.cache.get("hessian layout")
        if layout is None:
            layout = objective.cache["hessian layout"] = _Layout(objective)
        self.partition = partition = layout.partition
        full = objective.design.full_vector(free)
        _, _, prior_curvature = objective.prior(free)
        if not exact:
            design = objective.design
            prior_curvature = torch.where(design.cauchy, 2.0, 1.0) / design.prior_scale**2
        self.alone_scale = prior_curvature[partition.eliminated_without_pair].sqrt()

        d, a, coupling = _assemble(objective, layout, full, exact)
        d, a = _add_prior(partition, d, a, prior_curvature)
        self.d_factor, d_jitter = _cholesky(d, "pair blocks")
        self.columns = layout.columns
        self.whitened = torch.linalg.solve_triangular(self.d_factor, coupling, upper=False)
        self.chunks = _DenseChunks(self.whitened, layout.chunks)
        schur = _schur_complement(a, self.chunks)
        self.s_factor, s_jitter = _cholesky(schur, "Schur complement")
        self.regularised = bool((d_jitter > 0).any() or s_jitter > 0)

    # Moving between the parameters x and the whitened coordinates z = M' x.

    def _split(self, vector: torch.Tensor):
        partition = self.partition
        grid = torch.zeros(self.d_factor.shape[:2], dtype=torch.float64)
        paired = partition.eliminated_with_pair
        grid[partition.pair_of[paired], partition.slot_of[paired]] = vector[paired]
        return grid, vector[partition.kept], vector[partition.eliminated_without_pair]

    def _join(self, grid, kept, alone) -> torch.Tensor:
        partition = self.partition
        vector = torch.empty(partition.free_count, dtype=torch.float64)
        paired = partition.eliminated_with_pair
        vector[paired] = grid[partition.pair_of[paired], partition.slot_of[paired]]
        vector[partition.kept] = kept
        vector[partition.eliminated_without_pair] = alone
        return vector

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """Return z = M' x."""
        grid, kept, alone = self._split(x)
        z_kept = self.s_factor.T @ kept
        z_grid = (torch.einsum("pmn,pm->pn", self.d_factor, grid)
                  + torch.einsum("pmk,pk->pm", self.whitened, kept[self.columns]))
        return self._join(z_grid, z_kept, alone * self.alone_scale)

    def unwhiten(self, z: torch.Tensor) -> torch.Tensor:
        """Return x = M'^-1 z."""
        grid, kept, alone = self._split(z)
        x_kept = torch.linalg.solve_triangular(self.s_factor.T, kept[:, None], upper=True)[:, 0]
        rest = grid - torch.einsum("pmk,pk->pm", self.whitened, x_kept[self.columns])
        x_grid = torch.linalg.solve_triangular(self.d_factor.transpose(1, 2), rest[:, :, None], upper=True)[:, :, 0]
        return self._join(x_grid, x_kept, alone / self.alone_scale)

    def whiten_gradient(self, gradient: torch.Tensor) -> torch.Tensor:
        """Return M^-1 g, the gradient in the whitened coordinates."""
        grid, kept, alone = self._split(gradient)
        u_grid = torch.linalg.solve_triangular(self.d_factor, grid[:, :, None], upper=False)[:, :, 0]
        back = torch.zeros_like(kept).index_add_(
            0, self.columns.reshape(-1), torch.einsum("pmk,pm->pk", self.whitened, u_grid).reshape(-1))
        u_kept = torch.linalg.solve_triangular(self.s_factor, (kept - back)[:, None], upper=False)[:, 0]
        return self._join(u_grid, u_kept, alone / self.alone_scale)

    def solve(self, vector: torch.Tensor) -> torch.Tensor:
        """Return H^-1 vector: the covariance of every parameter with the linear function vector' x."""
        return self.unwhiten(self.whiten_gradient(vector))

    def inverse_diagonal(self) -> torch.Tensor:
        """Return diag(H^-1), the Laplace variances of the free parameters."""
        s_inverse = torch.cholesky_inverse(self.s_factor)
        pair_variance = _pair_variances(self.d_factor, self.chunks, s_inverse)
        return self._join(pair_variance, s_inverse.diagonal().clone(), 1 / self.alone_scale**2)


class _Partition:
    """Position of each parameter: in R (the dense part) or in E at (pair, slot)."""

    def __init__(self, objective: Objective):
        design = objective.design
        self.pairs = design.pairs
        self.free_count = design.free_count
        self.pair_columns = [position for position, name in enumerate(design.columns)
                             if design.blocks[name].per_pair]
        self.kept_columns = [position for position in range(len(design.columns))
                             if position not in self.pair_columns]

        self.free_of = design.free_index()

        per_pair = torch.zeros(design.size, dtype=torch.bool)
        for block in design.blocks.values():
            per_pair[block.offset:block.offset + block.size] = block.per_pair
        in_pair_block = per_pair[design.free_positions]
        self.kept = torch.nonzero(~in_pair_block).squeeze(1)
        self.eliminated = torch.nonzero(in_pair_block).squeeze(1)
        self.kept_of_position = torch.full((design.size,), -1, dtype=torch.long)
        self.kept_of_position[design.free_positions[self.kept]] = torch.arange(self.kept.numel())

        # Each E parameter's pair and slot, from the cells that read it. A
        # parameter that no cell reads (a pair without data) has pair -1.
        self.pair_of = torch.full((design.free_count,), -1, dtype=torch.long)
        self.slot_of = torch.full((design.free_count,), -1, dtype=torch.long)
        self.slot_free = torch.zeros(design.pairs, len(self.pair_columns), dtype=torch.bool)
        for slot, column in enumerate(self.pair_columns):
            free = self.free_of[design.local_index[:, column]]
            read = free >= 0
            self.pair_of[free[read]] = design.pair[read]
            self.slot_of[free[read]] = slot
            self.slot_free[design.pair[read], slot] = True
        language_of_pair = torch.as_tensor(pd.factorize(design.items["language"])[0])
        self.pair_order = torch.from_numpy(np.lexsort((np.arange(design.pairs), language_of_pair.numpy())))
        has_pair = self.pair_of[self.eliminated] >= 0
        self.eliminated_with_pair = self.eliminated[has_pair]
        self.eliminated_without_pair = self.eliminated[~has_pair]


class _Layout:
    """The sparsity structure of the Hessian, which is the same at every point of one fit.

    Each cell contributes one entry of B per kept column, with one value per
    slot. `destination` sends that entry to its place in the pair-by-pair
    layout of B, or to a spare row when the kept parameter is fixed.
    """

    def __init__(self, objective: Objective):
        self.partition = partition = _Partition(objective)
        keys = torch.cat([_coupling_keys(objective, partition, rows) for rows in _cell_chunks(objective)])
        spare = partition.kept.numel()
        unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)

        pair = unique // (spare + 1)
        column = unique % (spare + 1)
        real = column < spare
        counts = torch.bincount(pair[real], minlength=partition.pairs)
        first = torch.cumsum(counts, 0) - counts
        slot = torch.cumsum(real.long(), 0) - 1 - first[pair]
        self.width = int(counts.max().item()) if real.any() else 0
        spare_row = partition.pairs * self.width
        self.destination = torch.where(real, pair * self.width + slot, spare_row)[inverse]

        self.columns = torch.zeros(partition.pairs, self.width, dtype=torch.long)
        self.columns[pair[real], slot[real]] = column[real]
        self.chunks = _chunk_layout(self.columns, partition.pair_order)


def _cell_chunks(objective: Objective):
    for start in range(0, objective.design.cells, CELL_CHUNK):
        yield slice(start, start + CELL_CHUNK)


def _kept_indices(objective: Objective, partition: _Partition, rows: slice) -> torch.Tensor:
    """Return the R index of each kept column of the cells `rows`, with |R| for fixed parameters."""
    kept = partition.kept_of_position[objective.design.local_index[rows][:, partition.kept_columns]]
    return torch.where(kept >= 0, kept, partition.kept.numel())


def _coupling_keys(objective: Objective, partition: _Partition, rows: slice) -> torch.Tensor:
    kept = _kept_indices(objective, partition, rows)
    return (objective.design.pair[rows][:, None] * (partition.kept.numel() + 1) + kept).reshape(-1)


def _assemble(objective: Objective, layout: _Layout, full: torch.Tensor, exact: bool):
    """Accumulate the likelihood Hessian into D (pairs, m, m), A (|R|, |R|) and B (pairs, m, K).

    Fixed parameters are sent to an extra row and column of A and to a spare
    row of B, which are dropped afterwards. That avoids masking every cell's
    block.
    """
    design = objective.design
    partition = layout.partition
    width = len(partition.pair_columns)
    kept_count = partition.kept.numel()
    spare = kept_count + 1
    d = torch.zeros(partition.pairs, width, width, dtype=torch.float64)
    a = torch.zeros(spare * spare, dtype=torch.float64)
    b = torch.zeros(partition.pairs * layout.width + 1, width, dtype=torch.float64)
    pair_columns, kept_columns = partition.pair_columns, partition.kept_columns
    entry = 0

    for rows in _cell_chunks(objective):
        _, _, hessian = objective.cell_derivatives(full, rows, exact=exact)
        local = design.local_index[rows]
        pair_free = (partition.free_of[local[:, pair_columns]] >= 0).to(torch.float64)
        kept = _kept_indices(objective, partition, rows)

        block = hessian[:, pair_columns][:, :, pair_columns]
        d.index_add_(0, design.pair[rows], block * pair_free[:, :, None] * pair_free[:, None, :])

        flat = kept[:, :, None] * spare + kept[:, None, :]
        a.index_add_(0, flat.reshape(-1), hessian[:, kept_columns][:, :, kept_columns].reshape(-1))

        coupling = (hessian[:, pair_columns][:, :, kept_columns] * pair_free[:, :, None]).permute(0, 2, 1)
        values = coupling.reshape(-1, width)
        b.index_add_(0, layout.destination[entry:entry + values.shape[0]], values)
        entry += values.shape[0]

    a = a.view(spare, spare)[:kept_count, :kept_count].clone()
    b = b[:-1].view(partition.pairs, layout.width, width).permute(0, 2, 1).contiguous()
    return d, a, b


def _add_prior(partition: _Partition, d, a, prior_curvature):
    """Add the prior's diagonal Hessian; a fixed slot of D gets 1 on its diagonal to keep D invertible."""
    a.diagonal().add_(prior_curvature[partition.kept])
    eliminated = partition.eliminated_with_pair
    d[partition.pair_of[eliminated], partition.slot_of[eliminated], partition.slot_of[eliminated]] += (
        prior_curvature[eliminated])
    fixed = ~partition.slot_free
    pairs, slots = torch.nonzero(fixed, as_tuple=True)
    d[pairs, slots, slots] = 1.0
    return d, a


def _cholesky(matrix: torch.Tensor, name: str):
    """Return the lower Cholesky factor(s) of `matrix`, adding diagonal jitter where one is not positive definite.

    A MAP fit that converged gives a positive definite Hessian; jitter is
    only needed after an unconverged fit or at a saddle, and is logged.
    """
    factor, info = torch.linalg.cholesky_ex(matrix)
    jitter = torch.zeros(info.shape, dtype=torch.float64)
    scale = matrix.diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp_min(1e-12)
    while (info > 0).any():
        failed = info > 0
        jitter = torch.where(failed, torch.where(jitter > 0, jitter * 10, scale * 1e-10), jitter)
        eye = torch.eye(matrix.shape[-1], dtype=torch.float64)
        factor, info = torch.linalg.cholesky_ex(matrix + jitter[..., None, None] * eye)
        if (jitter > scale * 1e3).any():
            raise ValueError(f"the Hessian's {name} is far from positive definite; the fit did not reach a maximum")
    if (jitter > 0).any():
        log.warning("%s of the Hessian not positive definite; %d regularised with diagonal jitter",
                    name, int((jitter > 0).sum()))
    return factor, jitter


def _chunk_layout(columns: torch.Tensor, order: torch.Tensor) -> list:
    """Split the pairs into chunks; return each chunk with the union of its R columns and their positions in it.

    Pairs of one language share most of their R columns (theta and that
    language's delta and gamma), so chunks follow the language order. Each
    chunk's update of S is then one dense matrix product over a few hundred
    columns, not a scatter of every pair's K x K block.
    """
    chunks = []
    for start in range(0, columns.shape[0], PAIR_CHUNK):
        chunk = order[start:start + PAIR_CHUNK]
        union, position = torch.unique(columns[chunk], return_inverse=True)
        chunks.append((chunk, union, position))
    return chunks


class _DenseChunks:
    """The rows of W chunk by chunk, laid out densely over each chunk's union of R columns."""

    def __init__(self, whitened: torch.Tensor, layout: list):
        self.whitened = whitened
        self.layout = layout

    def __iter__(self):
        width = self.whitened.shape[1]
        for chunk, union, position in self.layout:
            dense = torch.zeros(chunk.numel(), width, union.numel(), dtype=torch.float64)
            dense.scatter_add_(2, position[:, None, :].expand(-1, width, -1), self.whitened[chunk])
            yield chunk, union, dense


def _schur_complement(a: torch.Tensor, chunks: _DenseChunks) -> torch.Tensor:
    """Return S = A - B' D^-1 B = A - W'W, one chunk of pairs at a time."""
    schur = a.clone()
    for _, union, dense in chunks:
        rows = dense.reshape(-1, union.numel())
        schur[union[:, None], union[None, :]] -= rows.T @ rows
    return schur


def _pair_variances(d_factor: torch.Tensor, chunks: _DenseChunks, s_inverse: torch.Tensor) -> torch.Tensor:
    """Return diag(D^-1 + D^-1 B S^-1 B' D^-1) for each pair block, as (pairs, m)."""
    eye = torch.eye(d_factor.shape[-1], dtype=torch.float64)
    d_inverse_factor = torch.linalg.solve_triangular(d_factor, eye.expand_as(d_factor), upper=False)
    variances = torch.empty(d_factor.shape[:2], dtype=torch.float64)
    for chunk, union, dense in chunks:
        projected = dense @ s_inverse[union[:, None], union[None, :]]
        inner = eye + torch.einsum("pmu,pnu->pmn", projected, dense)
        # D^-1 + ... = L^-T (I + W S^-1 W') L^-1, and only its diagonal is kept.
        m_inverse = d_inverse_factor[chunk]
        variances[chunk] = torch.einsum("pam,pab,pbm->pm", m_inverse, inner, m_inverse)
    return variances
