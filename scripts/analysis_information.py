from xlsafety.analyses import figures
from xlsafety.analyses.fit import ability_grid, information_curves
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, PARAMETERS, read_table, write_csv


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    parameters = read_table(snakemake.input.parameters, PARAMETERS)
    languages = sorted(cells.loc[cells["n_valid"] > 0, "language"].unique())

    curves = information_curves(parameters, ability_grid(*snakemake.params.grid), languages)
    write_csv(curves, snakemake.output.table)
    figures.information_plot(curves, snakemake.output.figure)


run_step(snakemake, main)
