import json

from xlsafety.irt import FitOptions, fit
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, PARAMETERS, read_table, write_csv, write_table, write_text


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    options = FitOptions(
        model=snakemake.wildcards.irt_model,
        reference_language=snakemake.params.reference_language,
        anchors=list(snakemake.params.anchors),
        tau_scale=snakemake.params.tau_scale,
        max_iterations=snakemake.params.max_iterations,
    )
    result = fit(cells, options)

    write_table(result.parameters, snakemake.output.parameters, PARAMETERS)
    write_csv(result.parameters, snakemake.output.csv)
    write_text(json.dumps(result.summary, indent=2, sort_keys=True) + "\n", snakemake.output.fit)


run_step(snakemake, main)
