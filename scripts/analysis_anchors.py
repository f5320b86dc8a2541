from xlsafety.analyses import figures
from xlsafety.analyses.anchors import AnchorSettings, dif_table, select_anchors
from xlsafety.scripting import run_step
from xlsafety.tables import CELLS, read_table, write_csv


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    selection = snakemake.params.selection
    settings = AnchorSettings(
        count=selection["count"],
        significance=selection["significance"],
        model=selection["model"],
        strata=selection["strata"],
        purification_rounds=selection["purification_rounds"],
        max_iterations=snakemake.params.max_iterations,
    )

    dif = dif_table(cells, snakemake.params.reference_language, settings)
    anchors, dif = select_anchors(dif, settings.count)

    write_csv(anchors, snakemake.output.anchors)
    write_csv(dif, snakemake.output.dif)
    figures.dif_screen(dif, settings.significance, snakemake.output.figure)


run_step(snakemake, main)
