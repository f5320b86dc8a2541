from xlsafety.judges.calibration import CALIBRATION_SUMMARY, calibration_summary
from xlsafety.scripting import run_step
from xlsafety.tables import write_csv, write_table


def main(snakemake):
    summary = calibration_summary(list(snakemake.input), list(snakemake.params.judges),
                                  list(snakemake.params.languages), snakemake.params.min_kappa)

    write_table(summary, snakemake.output.table, CALIBRATION_SUMMARY)
    write_csv(summary, snakemake.output.csv)


run_step(snakemake, main)
