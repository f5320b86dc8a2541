import json
import logging

from xlsafety.irt import FitOptions, fit
from xlsafety.irt.anchors import read_anchors
from xlsafety.irt.table import write_family_tables
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, PARAMETERS, read_table, write_csv, write_table, write_text

log = logging.getLogger("xlsafety.irt")

# Summary keys repeated in the job's log; fit.json has them all.
LOGGED = ("model", "cells", "passes", "parameters", "converged", "iterations", "max_abs_gradient", "loss_change",
          "map_seconds", "degenerate")


def main(snakemake):
    model = snakemake.wildcards.irt_model
    params = snakemake.params
    # CELLS includes the per-score counts n_score_1..n_score_5 that the graded model reads.
    cells = read_table(snakemake.input.cells, CELLS)
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
    write_family_tables(result.parameters, snakemake.output.tables + snakemake.output.table_csvs)
    write_text(json.dumps(result.summary, indent=2, sort_keys=True) + "\n", snakemake.output.fit)


run_step(snakemake, main)
