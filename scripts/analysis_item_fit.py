from xlsafety.analyses import figures
from xlsafety.analyses.fit import cell_residuals, item_keys, mean_squares, person_fit, safe_probability
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, PARAMETERS, read_table, write_csv


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    parameters = read_table(snakemake.input.parameters, PARAMETERS)
    fit_range = tuple(snakemake.params.fit_range)

    residuals = cell_residuals(cells, safe_probability(cells, parameters))
    items = mean_squares(residuals, item_keys(parameters), fit_range)
    persons = person_fit(residuals, fit_range)

    write_csv(items, snakemake.output.item_table)
    write_csv(persons, snakemake.output.person_table)
    figures.fit_scatter(items, persons, fit_range, snakemake.output.figure)


run_step(snakemake, main)
