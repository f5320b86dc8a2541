import pandas as pd

from xlsafety.matrix import assemble_cells, wide_view
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, JUDGMENTS, read_table, write_table


def main(snakemake):
    judgments = pd.concat([read_table(path, JUDGMENTS) for path in snakemake.input.judgments], ignore_index=True)
    cells = assemble_cells(judgments)
    write_table(cells, snakemake.output.cells, CELLS)

    wide = wide_view(cells)
    wide.to_parquet(snakemake.output.wide, index=False)


run_step(snakemake, main)
