from xlsafety.judges.agreement import JUDGE_AGREEMENT, pairwise_agreement, read_judgments
from xlsafety.scripting import run_step
from xlsafety.tables import write_csv, write_table


def main(snakemake):
    judgments = {judge: read_judgments(snakemake.input, judge) for judge in snakemake.params.judges}
    agreement = pairwise_agreement(judgments, list(snakemake.params.languages))

    write_table(agreement, snakemake.output.table, JUDGE_AGREEMENT)
    write_csv(agreement, snakemake.output.csv)


run_step(snakemake, main)
