import json
import logging

import pyarrow.parquet as pq

from xlsafety.errors import ConfigError
from xlsafety.irt import SCORE_COLUMNS, FitOptions, fit
from xlsafety.irt.anchors import read_anchors
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, PARAMETERS, read_table, write_csv, write_table, write_text

log = logging.getLogger("xlsafety.irt")

# Summary keys repeated in the job's log; fit.json has them all.
LOGGED = ("model", "cells", "passes", "parameters", "converged", "iterations", "max_abs_gradient", "loss_change",
          "map_seconds", "degenerate")


def read_cells(path, model):
    """Read the cells; the graded model also needs the per-score counts n_score_1..n_score_5."""
    cells = read_table(path, CELLS)
    if model != "grm":
        return cells
    present = pq.read_schema(path).names
    missing = [column for column in SCORE_COLUMNS if column not in present]
    if missing:
        raise ConfigError(
            f"irt.models: grm needs the counts {list(SCORE_COLUMNS)} in {path}, but the matrix stage "
            "of this version writes only n_valid, n_safe and mean_score; remove grm from irt.models"
        )
    return cells.join(pq.read_table(path, columns=list(SCORE_COLUMNS)).to_pandas())


def main(snakemake):
    model = snakemake.wildcards.irt_model
    params = snakemake.params
    cells = read_cells(snakemake.input.cells, model)
    options = FitOptions(
        model=model,
        reference_language=params.reference_language,
        anchors=read_anchors(params.anchors),
        tau_scale=params.tau_scale,
        max_iterations=params.max_iterations,
        gradient_tolerance=params.gradient_tolerance,
        standard_errors=params.standard_errors,
        scale_correction=params.scale_correction,
        threads=snakemake.threads,
    )
    result = fit(cells, options)
    log.info("fit summary: %s", json.dumps({key: result.summary[key] for key in LOGGED}))

    write_table(result.parameters, snakemake.output.parameters, PARAMETERS)
    write_csv(result.parameters, snakemake.output.csv)
    write_text(json.dumps(result.summary, indent=2, sort_keys=True) + "\n", snakemake.output.fit)


run_step(snakemake, main)
