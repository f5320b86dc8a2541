from xlsafety.analyses import figures
from xlsafety.analyses.jsr import jsr_intervals, jsr_with_ability
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, PARAMETERS, read_table, write_csv


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    parameters = read_table(snakemake.input.parameters, PARAMETERS)

    jsr = jsr_intervals(cells)
    table = jsr_with_ability(jsr, parameters)

    write_csv(table, snakemake.output.table)
    figures.jsr_vs_ability(table, snakemake.output.figure)


run_step(snakemake, main)
