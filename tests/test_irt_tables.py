"""The tidy per-family parameter tables and the fit statistics of an IRT fit."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from xlsafety.irt import FitOptions, fit
from xlsafety.irt.simulate import simulate_cells
from xlsafety.irt.table import FAMILY_LABELS, FAMILY_SCHEMAS, family_tables, write_family_tables

SHAPE = {"configurations": 5, "prompts": 6, "languages": 3, "passes": 4, "anchors": 2}


def fitted(model: str):
    simulation = simulate_cells(61, graded=model == "grm", **SHAPE)
    return fit(simulation.cells, FitOptions(model=model, anchors=simulation.anchors))


def test_multigroup_tables_row_counts():
    tables = family_tables(fitted("multigroup-2pl").parameters)
    sizes = {family: len(table) for family, table in tables.items()}

    # Reference-language delta, gamma and tau are 0 by definition and left out.
    assert sizes == {"theta": 5, "delta": 5 * 2, "beta": 6, "gamma": 2, "tau": 6 * 2, "alpha": 6, "steps": 0}
    assert tables["tau"]["fixed"].sum() == 2 * 2
    assert tables["beta"]["language"].isna().all()
    assert list(tables["delta"].columns) == ["configuration", "language", "estimate", "se", "lower", "upper", "fixed"]


def test_unidimensional_items_labelled_by_language():
    tables = family_tables(fitted("1pl").parameters)

    assert len(tables["beta"]) == 6 * 3
    assert tables["beta"][["id", "language"]].notna().all().all()
    assert tables["alpha"]["fixed"].all()
    assert tables["gamma"].empty
    assert tables["tau"].empty
    assert tables["delta"].empty


def test_graded_model_threshold_steps():
    steps = family_tables(fitted("grm").parameters)["steps"]

    assert len(steps) == 6 * 3
    assert sorted(steps["step"].unique()) == ["step_2", "step_3", "step_5"]
    assert (steps["estimate"] > 0).all()
    assert (steps["lower"] < steps["estimate"]).all()
    assert (steps["estimate"] < steps["upper"]).all()


@pytest.mark.parametrize("model", ["multigroup-2pl", "2pl"])
def test_written_tables_match_schemas(tmp_path, model):
    parameters = fitted(model).parameters
    paths = [tmp_path / f"{family}.{suffix}" for family in FAMILY_LABELS for suffix in ("parquet", "csv")]
    write_family_tables(parameters, paths)

    for family in FAMILY_LABELS:
        assert pq.read_schema(tmp_path / f"{family}.parquet").equals(FAMILY_SCHEMAS[family], check_metadata=False)
        assert len(pd.read_csv(tmp_path / f"{family}.csv")) == len(pd.read_parquet(tmp_path / f"{family}.parquet"))
    theta = pd.read_parquet(tmp_path / "theta.parquet")
    assert (theta["lower"] < theta["estimate"]).all()
    assert (theta["estimate"] < theta["upper"]).all()


def test_missing_output_path_is_named(tmp_path):
    paths = [tmp_path / "theta.parquet", tmp_path / "theta.csv"]

    with pytest.raises(ValueError, match=r"'beta.parquet'"):
        write_family_tables(fitted("2pl").parameters, paths)


def test_fit_statistics_in_summary():
    simulation = simulate_cells(62, missing_share=0.2, **SHAPE)
    summary = fit(simulation.cells, FitOptions(anchors=simulation.anchors)).summary

    for key in ("log_likelihood", "aic", "bic", "parameters", "cells", "rows"):
        assert key in summary
    assert summary["cells"] == len(simulation.cells)
    assert summary["rows"] == simulation.cells["n_valid"].sum()
