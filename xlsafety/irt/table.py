"""The parameter tables of a fit (one long table, one tidy table per family) and its degenerate units."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from xlsafety.irt.design import Block, Design
from xlsafety.tables import write_csv, write_table

# Two-sided 95% normal quantile for the Laplace intervals.
Z_95 = 1.959963984540054

# Blocks estimated on the log scale and the name they are reported under.
LOG_SCALE = {"log_alpha": "alpha", "log_step_2": "step_2", "log_step_3": "step_3", "log_step_5": "step_5"}

COLUMNS = ["parameter", "configuration", "id", "language", "estimate", "se", "lower", "upper", "fixed"]


def parameter_table(design: Design, free: torch.Tensor, standard_errors: torch.Tensor | None) -> pd.DataFrame:
    """Lay the estimates out as one row per parameter, with Laplace standard errors and 95% intervals.

    Reference-language entries of delta, gamma and tau are left out because
    they are 0 by definition. Anchored tau and, in the 1PL models, alpha are
    listed with fixed = True and se = 0. alpha and the graded steps are
    estimated as logarithms: their intervals are exp(log value +- 1.96 se)
    and their se is the delta-method se on the natural scale.
    """
    values = design.full_vector(free).numpy()
    errors = np.zeros(design.size)
    if standard_errors is not None:
        errors[design.free_positions.numpy()] = standard_errors.numpy()
    else:
        errors[design.free_positions.numpy()] = np.nan
    free_mask = np.zeros(design.size, dtype=bool)
    free_mask[design.free_positions.numpy()] = True

    frames = [_block_frame(design, block, values, errors, free_mask) for block in design.blocks.values()]
    table = pd.concat(frames, ignore_index=True)[COLUMNS]
    table["id"] = table["id"].astype("Int64")
    return table


# One tidy table per parameter family, with the labels that identify its rows.
# beta and alpha belong to a prompt in the multigroup models and to a
# (prompt, language) pair in the unidimensional ones, where language is set.
# steps contains the graded model's threshold gaps step_2, step_3 and step_5
# (see models.py). The thresholds of prompt i are beta_i - step_3 - step_2,
# beta_i - step_3, beta_i and beta_i + step_5.
# NOTE: the thresholds themselves are not tabled, because their standard
# errors need the covariance of beta and the steps, which the fit does not keep.
FAMILY_LABELS = {
    "theta": ("configuration",),
    "delta": ("configuration", "language"),
    "beta": ("id", "language"),
    "gamma": ("language",),
    "tau": ("id", "language"),
    "alpha": ("id", "language"),
    "steps": ("id", "language", "step"),
}
STEP_PARAMETERS = ("step_2", "step_3", "step_5")
LABEL_TYPES = {"configuration": pa.string(), "id": pa.int64(), "language": pa.string(), "step": pa.string()}
VALUE_FIELDS = [
    ("estimate", pa.float64()),
    # Laplace standard error and 95% interval. Where the value is fixed
    # (anchored tau, alpha of the 1PL models), se is 0 and the interval a point.
    ("se", pa.float64()),
    ("lower", pa.float64()),
    ("upper", pa.float64()),
    ("fixed", pa.bool_()),
]
FAMILY_SCHEMAS = {
    family: pa.schema([(label, LABEL_TYPES[label]) for label in labels] + VALUE_FIELDS)
    for family, labels in FAMILY_LABELS.items()
}


def family_tables(parameters: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split the long parameter table into one table per family of FAMILY_LABELS.

    A family that the model lacks (gamma in the 1PL, steps outside the graded
    model) gets an empty table, so every model writes the same files.
    """
    tables = {}
    for family, labels in FAMILY_LABELS.items():
        if family == "steps":
            rows = parameters[parameters["parameter"].isin(STEP_PARAMETERS)].rename(columns={"parameter": "step"})
        else:
            rows = parameters[parameters["parameter"] == family]
        columns = list(FAMILY_SCHEMAS[family].names)
        tables[family] = rows[columns].sort_values(list(labels), kind="stable").reset_index(drop=True)
    return tables


def write_family_tables(parameters: pd.DataFrame, paths: list) -> None:
    """Write each family's table to the paths named after it: {family}.parquet and {family}.csv.

    Every family of FAMILY_LABELS needs both paths, so a renamed output fails
    here rather than leaving a table unwritten.
    """
    by_name = {(Path(path).stem, Path(path).suffix): path for path in paths}
    tables = family_tables(parameters)
    missing = [f"{family}{suffix}" for family in tables for suffix in (".parquet", ".csv")
               if (family, suffix) not in by_name]
    if missing:
        raise ValueError(f"no output path for the parameter tables {missing}; paths given: {list(paths)}")
    for family, table in tables.items():
        write_table(table, by_name[family, ".parquet"], FAMILY_SCHEMAS[family])
        write_csv(table, by_name[family, ".csv"])


def _block_frame(design: Design, block: Block, values, errors, free_mask) -> pd.DataFrame:
    labels = _labels(design, block)
    positions = block.offset + np.arange(block.size)
    frame = labels.assign(
        parameter=LOG_SCALE.get(block.name, block.name),
        estimate=values[positions],
        se=errors[positions],
        fixed=~free_mask[positions],
    )
    if block.name in ("delta", "gamma", "tau"):
        frame = frame[frame["language"] != design.languages[design.reference]]

    lower = frame["estimate"] - Z_95 * frame["se"]
    upper = frame["estimate"] + Z_95 * frame["se"]
    if block.name in LOG_SCALE:
        natural = np.exp(frame["estimate"])
        frame = frame.assign(estimate=natural, se=natural * frame["se"], lower=np.exp(lower), upper=np.exp(upper))
    else:
        frame = frame.assign(lower=lower, upper=upper)
    return frame


def _labels(design: Design, block: Block) -> pd.DataFrame:
    """Return the configuration, id and language of each element of `block`, in storage order."""
    configurations = np.array(design.configurations, dtype=object)
    prompts = np.array(design.prompts, dtype=object)
    languages = np.array(design.languages, dtype=object)
    empty = np.full(block.size, None, dtype=object)

    if block.name == "theta":
        return pd.DataFrame({"configuration": configurations, "id": empty, "language": empty})
    if block.name == "delta":
        return pd.DataFrame({"configuration": np.repeat(configurations, len(languages)), "id": empty,
                             "language": np.tile(languages, len(configurations))})
    if block.name == "gamma":
        return pd.DataFrame({"configuration": empty, "id": empty, "language": languages})
    if block.name == "tau":
        return pd.DataFrame({"configuration": empty, "id": np.repeat(prompts, len(languages)),
                             "language": np.tile(languages, len(prompts))})
    # Item parameters: per prompt in the multigroup models, per (prompt, language) pair otherwise.
    if design.spec.language_terms:
        return pd.DataFrame({"configuration": empty, "id": prompts, "language": empty})
    return pd.DataFrame({"configuration": empty, "id": design.items["id"].to_numpy(dtype=object),
                         "language": design.items["language"].to_numpy(dtype=object)})


def degenerate_units(cells: pd.DataFrame, all_cells: pd.DataFrame | None = None) -> dict:
    """List configurations, prompts, languages and cells without variance in safe / unsafe.

    Their estimates stay finite only through the priors, so they are reported
    rather than rejected. Languages answered by only some configurations are
    listed with the configurations that lack them. `all_cells`, when given,
    also contains the cells without a valid pass, which the fit drops: units
    left with no valid pass at all are listed as well, because they get no
    estimate.
    """
    listing: dict = {}
    if all_cells is not None:
        listing.update(_units_without_valid_pass(all_cells))
    for key, label in (("configuration", "configurations"), ("id", "prompts"), ("language", "languages")):
        totals = cells.groupby(key)[["n_safe", "n_valid"]].sum()
        listing[f"{label}_all_safe"] = _plain(totals.index[totals["n_safe"] == totals["n_valid"]])
        listing[f"{label}_all_unsafe"] = _plain(totals.index[totals["n_safe"] == 0])
    listing["cells_all_safe"] = int((cells["n_safe"] == cells["n_valid"]).sum())
    listing["cells_all_unsafe"] = int((cells["n_safe"] == 0).sum())

    everyone = set(cells["configuration"])
    answered = cells.groupby("language")["configuration"].agg(set)
    listing["languages_partly_answered"] = {
        language: sorted(everyone - configurations)
        for language, configurations in answered.items() if configurations != everyone
    }
    return listing


def _units_without_valid_pass(all_cells: pd.DataFrame) -> dict:
    """List the configurations, prompts and languages whose every cell has no valid pass."""
    listing = {}
    for key, label in (("configuration", "configurations"), ("id", "prompts"), ("language", "languages")):
        valid = all_cells.groupby(key)["n_valid"].sum()
        listing[f"{label}_without_valid_pass"] = _plain(valid.index[valid == 0])
    return listing


def _plain(values) -> list:
    """Return sorted JSON-ready values (numpy integers become int)."""
    return sorted(int(value) if isinstance(value, (np.integer, int)) else str(value) for value in values)
