"""From a table of cells to the tensors and parameter layout of one IRT fit.

All parameters, free and fixed, live in one flat vector. A block is one named
family of parameters (theta, delta, ...) stored contiguously in it. Each cell
reads its parameters through one row of `local_index`, so the likelihood, its
gradient and its Hessian are computed cell by cell without Python loops and
scattered back with `index_add_`.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from xlsafety.errors import CellsError
from xlsafety.irt.families import BinaryResponse, GradedResponse
from xlsafety.irt.models import SCORE_COLUMNS, ModelSpec

log = logging.getLogger(__name__)

KEY_COLUMNS = ("configuration", "id", "language")
COUNT_COLUMNS = ("n_valid", "n_safe")

# Prior means and scales (see models.py); tau's scale is an option of the fit.
THETA_PRIOR = (0.0, 1.0)
DELTA_PRIOR = (0.0, 0.5)
BETA_PRIOR = (0.0, 1.0)
GAMMA_PRIOR = (0.0, 1.0)
LOG_ALPHA_PRIOR = (0.5, 0.5)
LOG_STEP_PRIOR = (0.0, 1.0)

# Sign of each location term in a = alpha * (ability - hardness).
LOCATION_SIGNS = {"theta": 1.0, "delta": 1.0, "beta": -1.0, "gamma": -1.0, "tau": -1.0}


@dataclass
class Block:
    """One family of parameters in the flat parameter vector."""

    name: str
    offset: int
    shape: tuple[int, ...]
    free: np.ndarray
    prior: str
    prior_location: float
    prior_scale: float
    # True for parameters that belong to a single (prompt, language) pair,
    # which makes their block of the Hessian block-diagonal (see hessian.py).
    per_pair: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def positions(self, *indices) -> np.ndarray:
        """Return flat-vector positions of the elements at `indices` (arrays, one per axis)."""
        return self.offset + np.ravel_multi_index(indices, self.shape)


@dataclass
class Design:
    """Data and parameter layout of one fit."""

    spec: ModelSpec
    configurations: list
    prompts: list
    languages: list
    reference: int
    anchors: list
    items: pd.DataFrame
    blocks: dict[str, Block]
    local_index: torch.Tensor
    columns: list[str]
    pair: torch.Tensor
    pairs: int
    response: BinaryResponse | GradedResponse
    passes: int
    initial: torch.Tensor
    scale_correction: bool = True
    free_positions: torch.Tensor = field(init=False)
    scale_weight: torch.Tensor = field(init=False)
    prior_location: torch.Tensor = field(init=False)
    prior_scale: torch.Tensor = field(init=False)
    cauchy: torch.Tensor = field(init=False)

    def __post_init__(self):
        size = sum(block.size for block in self.blocks.values())
        free = np.zeros(size, dtype=bool)
        location = np.zeros(size)
        scale = np.ones(size)
        cauchy = np.zeros(size, dtype=bool)
        for block in self.blocks.values():
            span = slice(block.offset, block.offset + block.size)
            free[span] = block.free.ravel()
            location[span] = block.prior_location
            scale[span] = block.prior_scale
            cauchy[span] = block.prior == "cauchy"
        self.free_positions = torch.from_numpy(np.flatnonzero(free))
        self.prior_location = torch.from_numpy(location[free])
        self.prior_scale = torch.from_numpy(scale[free])
        self.cauchy = torch.from_numpy(cauchy[free])
        self.scale_weight = self._scale_weight(free)

    def _scale_weight(self, free: np.ndarray) -> torch.Tensor:
        """Return the weights w of the scale term w' x added to the negative log posterior.

        The likelihood is unchanged by a -> c a with every location term
        (theta, delta, beta, gamma, tau) divided by c, so only the priors fix
        c. Along that orbit the joint density ignores the volume factor c^-K
        of the K free location terms. The joint mode therefore shrinks every
        location term towards 0: to about half the true spread at the test
        shapes, with 30% interval coverage. Adding K * mean(log a), which
        changes by K log c along the orbit, makes the estimate the mode of
        the marginal posterior along the orbit. The term is linear, so it
        leaves the Hessian unchanged. Models with a = 1 have no such orbit.
        The fit then replaces K by K_eff, which also counts how the priors'
        curvature changes along the orbit (scale.py, set_scale_count).
        """
        weight = np.zeros(int(free.sum()))
        alpha = self.blocks["log_alpha"]
        alpha_free = alpha.free.ravel()
        if not (self.scale_correction and alpha_free.any()):
            return torch.from_numpy(weight)

        in_alpha = np.zeros(free.size, dtype=bool)
        in_alpha[alpha.offset:alpha.offset + alpha.size] = alpha_free
        weight[in_alpha[free]] = self.free_locations / alpha_free.sum()
        return torch.from_numpy(weight)

    @property
    def has_scale_orbit(self) -> bool:
        """True when the scale term is in use: a free discrimination and scale_correction."""
        return bool(self.scale_weight.abs().sum() > 0)

    @property
    def free_locations(self) -> int:
        """The number K of free location terms (theta, delta, beta, gamma, tau)."""
        return sum(int(block.free.sum()) for name, block in self.blocks.items() if name in LOCATION_SIGNS)

    def location_mask(self) -> torch.Tensor:
        """Return which free parameters are location terms."""
        mask = torch.zeros(self.size, dtype=torch.bool)
        for name, block in self.blocks.items():
            if name in LOCATION_SIGNS:
                mask[block.offset:block.offset + block.size] = True
        return mask[self.free_positions]

    def free_index(self) -> torch.Tensor:
        """Return, for each position of the full parameter vector, its position in the free vector (-1 if fixed)."""
        index = torch.full((self.size,), -1, dtype=torch.long)
        index[self.free_positions] = torch.arange(self.free_count)
        return index

    def set_scale_count(self, count: float) -> None:
        """Make the scale term count * mean(log a) rather than K * mean(log a) (see scale.py)."""
        if self.has_scale_orbit:
            in_alpha = self.scale_weight != 0
            self.scale_weight = torch.where(in_alpha, count / in_alpha.sum(), 0.0).to(torch.float64)

    @property
    def size(self) -> int:
        return sum(block.size for block in self.blocks.values())

    @property
    def cells(self) -> int:
        return int(self.local_index.shape[0])

    @property
    def free_count(self) -> int:
        return int(self.free_positions.numel())

    @property
    def location_columns(self) -> int:
        return sum(name in LOCATION_SIGNS for name in self.columns)

    @property
    def location_signs(self) -> torch.Tensor:
        return torch.tensor([LOCATION_SIGNS[name] for name in self.columns if name in LOCATION_SIGNS],
                            dtype=torch.float64)

    def full_vector(self, free_values: torch.Tensor) -> torch.Tensor:
        """Return every parameter, with fixed ones at 0 and free ones from `free_values`."""
        full = torch.zeros(self.size, dtype=torch.float64)
        full[self.free_positions] = free_values
        return full


def validate_cells(cells: pd.DataFrame, graded: bool) -> pd.DataFrame:
    """Check the cell table and return its cells with at least one valid pass.

    Counts and prompt ids are returned as int64.
    """
    if not isinstance(cells, pd.DataFrame):
        raise CellsError(f"cells must be a pandas DataFrame, got {type(cells).__name__}")
    needed = list(KEY_COLUMNS + COUNT_COLUMNS) + (list(SCORE_COLUMNS) if graded else [])
    missing = [column for column in needed if column not in cells.columns]
    if missing:
        hint = " (the graded model needs one count column per judge score 1..5)" if graded else ""
        raise CellsError(f"cells table lacks columns {missing}{hint}")

    cells = cells.copy()
    for column in needed[3:]:
        cells[column] = _integer_column(cells, column, "non-negative integers", minimum=0)
    cells["id"] = _integer_column(cells, "id", "integer prompt ids")
    for column in ("configuration", "language"):
        blank = cells.index[cells[column].isna() | (cells[column].astype(str).str.strip() == "")]
        if len(blank):
            raise CellsError(f"column {column!r} is empty in rows {list(blank[:5])}; "
                             "every cell needs a configuration and a language")

    over = cells.index[cells["n_safe"] > cells["n_valid"]]
    if len(over):
        raise CellsError(f"n_safe exceeds n_valid in rows {list(over[:5])}")
    duplicated = cells.index[cells.duplicated(list(KEY_COLUMNS), keep=False)]
    if len(duplicated):
        raise CellsError(f"cells repeat a (configuration, id, language) key in rows {list(duplicated[:5])}")
    if graded:
        _check_score_counts(cells)

    used = cells[cells["n_valid"] > 0].reset_index(drop=True)
    if used.empty:
        raise CellsError("no cell has a valid pass; the IRT model has no data to fit")
    return used


def _integer_column(cells: pd.DataFrame, column: str, meaning: str, minimum: float = -np.inf) -> pd.Series:
    """Return `column` as int64, or raise naming the first rows that are not whole numbers of at least `minimum`."""
    if pd.api.types.is_bool_dtype(cells[column]) or not pd.api.types.is_numeric_dtype(cells[column]):
        raise CellsError(f"column {column!r} must hold {meaning}; it has type {cells[column].dtype}, "
                         "so convert it to numbers first")
    values = cells[column].astype(np.float64)
    bad = cells.index[values.isna() | (values < minimum) | (values != np.floor(values))]
    if len(bad):
        raise CellsError(f"column {column!r} must hold {meaning}; bad rows: {list(bad[:5])}")
    return values.astype(np.int64)


def _check_score_counts(cells: pd.DataFrame) -> None:
    scored = cells[list(SCORE_COLUMNS)].sum(axis=1)
    mismatch = cells.index[scored != cells["n_valid"]]
    if len(mismatch):
        raise CellsError(f"n_score_1..n_score_5 do not add up to n_valid in rows {list(mismatch[:5])}")
    safe = cells["n_score_4"] + cells["n_score_5"]
    mismatch = cells.index[safe != cells["n_safe"]]
    if len(mismatch):
        raise CellsError(f"n_score_4 + n_score_5 differs from n_safe in rows {list(mismatch[:5])}")


def build_design(cells: pd.DataFrame, spec: ModelSpec, reference_language: str, anchors: list[int],
                 tau_scale: float, scale_correction: bool = True) -> Design:
    """Lay out the parameters of `spec` for `cells` (already validated) and encode the data."""
    configurations, j = _codes(cells["configuration"])
    prompts, i = _codes(cells["id"].astype(np.int64))
    languages, g = _codes(cells["language"])
    if reference_language not in languages:
        raise CellsError(f"reference language {reference_language!r} has no valid cell; "
                         f"languages with data: {languages}")
    reference = languages.index(reference_language)

    known = set(prompts)
    unknown = sorted(set(anchors) - known)
    if unknown and spec.language_terms:
        log.warning("anchor prompts %s have no valid cell and are ignored", unknown)
    anchor_rows = sorted(prompts.index(anchor) for anchor in set(anchors) & known)

    # A (prompt, language) pair, the item of the unidimensional models.
    pair_codes = i * len(languages) + g
    pair_labels, pair = np.unique(pair_codes, return_inverse=True)
    items = pd.DataFrame({"id": [prompts[code // len(languages)] for code in pair_labels],
                          "language": [languages[code % len(languages)] for code in pair_labels]})

    blocks, columns, index = _layout(spec, j, i, g, pair, len(configurations), len(prompts), len(languages),
                                     len(pair_labels), reference, anchor_rows, tau_scale)
    response = _response(cells, spec)
    design = Design(
        spec=spec, configurations=configurations, prompts=prompts, languages=languages, reference=reference,
        anchors=[prompts[row] for row in anchor_rows], items=items, blocks=blocks,
        local_index=torch.from_numpy(np.stack(index, axis=1)), columns=columns,
        pair=torch.from_numpy(pair.astype(np.int64)), pairs=len(pair_labels), response=response,
        passes=int(cells["n_valid"].sum()), initial=torch.empty(0), scale_correction=scale_correction,
    )
    design.initial = _initial_values(design, cells, j)
    return design


def _codes(values: pd.Series) -> tuple[list, np.ndarray]:
    """Return the sorted distinct values and each row's position among them."""
    # Hashing with factorize is several times faster than np.unique's sort on millions of strings.
    codes, labels = pd.factorize(values, sort=True)
    return labels.tolist(), codes.astype(np.int64)


def _layout(spec, j, i, g, pair, n_configurations, n_prompts, n_languages, n_pairs, reference, anchor_rows,
            tau_scale):
    """Define the parameter blocks and, per cell, the position of each parameter it reads."""
    blocks: dict[str, Block] = {}
    columns: list[str] = []
    index: list[np.ndarray] = []
    offset = 0

    def add(name, shape, free, prior, location, scale, positions, per_pair=False):
        nonlocal offset
        block = Block(name, offset, shape, free, prior, location, scale, per_pair)
        blocks[name] = block
        offset += block.size
        columns.append(name)
        index.append(block.positions(*positions))

    def everywhere(shape):
        return np.ones(shape, dtype=bool)

    away_from_reference = np.arange(n_languages) != reference
    add("theta", (n_configurations,), everywhere(n_configurations), "normal", *THETA_PRIOR, (j,))
    if spec.language_terms:
        delta_free = np.broadcast_to(away_from_reference, (n_configurations, n_languages)).copy()
        add("delta", (n_configurations, n_languages), delta_free, "normal", *DELTA_PRIOR, (j, g))
        add("beta", (n_prompts,), everywhere(n_prompts), "normal", *BETA_PRIOR, (i,))
        add("gamma", (n_languages,), away_from_reference.copy(), "normal", *GAMMA_PRIOR, (g,))
        tau_free = np.broadcast_to(away_from_reference, (n_prompts, n_languages)).copy()
        tau_free[anchor_rows, :] = False
        add("tau", (n_prompts, n_languages), tau_free, "cauchy", 0.0, tau_scale, (i, g), per_pair=True)
        item, n_items = i, n_prompts
    else:
        add("beta", (n_pairs,), everywhere(n_pairs), "normal", *BETA_PRIOR, (pair,), per_pair=True)
        item, n_items = pair, n_pairs

    alpha_free = everywhere(n_items) if spec.discrimination else np.zeros(n_items, dtype=bool)
    add("log_alpha", (n_items,), alpha_free, "normal", *LOG_ALPHA_PRIOR, (item,), per_pair=not spec.language_terms)
    if spec.graded:
        for name in ("log_step_2", "log_step_3", "log_step_5"):
            add(name, (n_items,), everywhere(n_items), "normal", *LOG_STEP_PRIOR, (item,),
                per_pair=not spec.language_terms)
    return blocks, columns, index


def _response(cells: pd.DataFrame, spec: ModelSpec):
    if spec.graded:
        counts = torch.from_numpy(cells[list(SCORE_COLUMNS)].to_numpy(dtype=np.float64))
        return GradedResponse(counts)
    safe = torch.from_numpy(cells["n_safe"].to_numpy(dtype=np.float64))
    valid = torch.from_numpy(cells["n_valid"].to_numpy(dtype=np.float64))
    return BinaryResponse(safe, valid)


def _initial_values(design: Design, cells: pd.DataFrame, j: np.ndarray) -> torch.Tensor:
    """Start theta and beta at smoothed logits of the safe shares, and the rest at prior modes.

    A start near the data saves L-BFGS iterations. The logits are divided by
    the prior mode of a, because a scales every term of the predictor.
    """
    full = torch.zeros(design.size, dtype=torch.float64)
    safe = cells["n_safe"].to_numpy(dtype=np.float64)
    valid = cells["n_valid"].to_numpy(dtype=np.float64)
    scale = np.exp(LOG_ALPHA_PRIOR[0]) if design.spec.discrimination else 1.0

    theta = _smoothed_logit(np.bincount(j, safe), np.bincount(j, valid)) / scale
    _set_block(full, design.blocks["theta"], theta - theta.mean())

    beta_block = design.blocks["beta"]
    rows = design.local_index[:, design.columns.index("beta")].numpy() - beta_block.offset
    shares = _smoothed_logit(np.bincount(rows, safe, beta_block.size), np.bincount(rows, valid, beta_block.size))
    beta = -shares / scale
    _set_block(full, beta_block, beta - beta.mean())

    if design.spec.discrimination:
        _set_block(full, design.blocks["log_alpha"], LOG_ALPHA_PRIOR[0])
    return full[design.free_positions]


def _set_block(full: torch.Tensor, block: Block, values) -> None:
    full[block.offset:block.offset + block.size] = torch.as_tensor(values, dtype=torch.float64)


def _smoothed_logit(safe: np.ndarray, valid: np.ndarray) -> np.ndarray:
    share = (safe + 0.5) / (valid + 1.0)
    return np.log(share / (1 - share))
