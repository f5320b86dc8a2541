from xlsafety.scripting import run_step
from xlsafety.summary import jsr_table, parameter_table, top_tau
from xlsafety.tables import CELLS, PARAMETERS, PROMPTS, read_table, write_csv


def main(snakemake):
    cells = read_table(snakemake.input.cells, CELLS)
    parameters = read_table(snakemake.input.parameters, PARAMETERS)
    prompts = read_table(snakemake.input.prompts, PROMPTS)

    write_csv(jsr_table(cells), snakemake.output.jsr)
    write_csv(parameter_table(parameters, "theta", ["configuration"]), snakemake.output.theta)
    write_csv(parameter_table(parameters, "gamma", ["language"]), snakemake.output.gamma)
    write_csv(top_tau(parameters, prompts, snakemake.params.top_tau), snakemake.output.top_tau)


run_step(snakemake, main)
