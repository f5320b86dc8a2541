import pandas as pd

from xlsafety.analyses import figures
from xlsafety.analyses.gap import free_tau, tau_vs_quality
from xlsafety.scripting import run_step
from xlsafety.tables import PARAMETERS, read_table, write_csv


def main(snakemake):
    tau = free_tau(read_table(snakemake.input.parameters, PARAMETERS))
    quality = pd.concat([pd.read_csv(path) for path in snakemake.input.quality], ignore_index=True)
    quality = quality.astype({"id": "int64"})

    write_csv(tau_vs_quality(tau, quality), snakemake.output.table)
    figures.tau_quality_scatter(tau, quality, snakemake.output.figure)


run_step(snakemake, main)
