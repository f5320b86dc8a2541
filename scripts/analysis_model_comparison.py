import json

from xlsafety.analyses import figures
from xlsafety.analyses.fit import binomial_log_likelihood, model_comparison, safe_probability
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, PARAMETERS, read_table, write_csv


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    cells = cells[cells["n_valid"] > 0]
    summaries, safe_log_likelihoods = {}, {}
    for model, fit_path, parameters_path in zip(snakemake.params.models, snakemake.input.fits,
                                                snakemake.input.parameters):
        with open(fit_path, encoding="utf-8") as handle:
            summaries[model] = json.load(handle)
        parameters = read_table(parameters_path, PARAMETERS)
        safe_log_likelihoods[model] = binomial_log_likelihood(cells, safe_probability(cells, parameters))

    table = model_comparison(summaries, safe_log_likelihoods)
    write_csv(table, snakemake.output.table)
    figures.model_comparison_bars(table, snakemake.output.figure)


run_step(snakemake, main)
