import logging

from xlsafety.scripting import run_step
from xlsafety.sources.simulation import RECOVERY, TRUTH, recovery_markdown, recovery_table
from xlsafety.tables import PARAMETERS, read_table, write_csv, write_table, write_text

log = logging.getLogger("xlsafety.simulation")


def main(snakemake):
    truth = read_table(snakemake.input.truth, TRUTH)
    estimates = {
        model: read_table(path, PARAMETERS)
        for model, path in zip(snakemake.params.models, snakemake.input.parameters)
    }
    recovery = recovery_table(truth, estimates)
    log.info("recovery:\n%s", recovery.to_string(index=False))

    write_table(recovery, snakemake.output.parquet, RECOVERY)
    write_csv(recovery, snakemake.output.table)
    write_text(recovery_markdown(recovery, snakemake.params.label), snakemake.output.fragment)


run_step(snakemake, main)
