from xlsafety.analyses import figures
from xlsafety.analyses.gap import free_tau, tau_by_category, tau_by_language, top_tau
from xlsafety.scripting import run_step
from xlsafety.tables import PARAMETERS, PROMPTS, read_table, write_csv


def main(snakemake):
    tau = free_tau(read_table(snakemake.input.parameters, PARAMETERS))
    prompts = read_table(snakemake.input.prompts, PROMPTS)

    by_category = tau_by_category(tau, prompts, snakemake.params.resamples, snakemake.params.seed)
    by_language = tau_by_language(tau)
    write_csv(top_tau(tau, prompts, snakemake.params.top_tau), snakemake.output.top_tau)
    write_csv(by_category, snakemake.output.by_category)
    write_csv(by_language, snakemake.output.by_language)
    figures.tau_panels(by_category, by_language, snakemake.output.figure)


run_step(snakemake, main)
