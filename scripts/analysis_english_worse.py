from xlsafety.analyses import figures
from xlsafety.analyses.english_worse import english_worse, english_worse_counts
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, PARAMETERS, read_table, write_csv


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    parameters = read_table(snakemake.input.parameters, PARAMETERS)

    table = english_worse(cells, parameters, snakemake.params.reference_language)
    write_csv(table, snakemake.output.table)
    write_csv(english_worse_counts(table), snakemake.output.counts)
    figures.english_worse_panels(table, snakemake.output.figure)


run_step(snakemake, main)
