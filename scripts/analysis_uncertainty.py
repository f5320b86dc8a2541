from xlsafety.analyses import figures
from xlsafety.analyses.uncertainty import cell_entropy, mean_entropy
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, read_table, write_csv


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    entropy = cell_entropy(cells, snakemake.params.min_valid)

    by_language = mean_entropy(entropy, "language")
    by_language = by_language.merge(entropy[["language", "resource"]].drop_duplicates(), on="language")
    write_csv(by_language, snakemake.output.by_language)
    write_csv(mean_entropy(entropy, "resource"), snakemake.output.by_resource)
    figures.entropy_bars(by_language, snakemake.output.figure)


run_step(snakemake, main)
