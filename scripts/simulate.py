from xlsafety.scripting import run_step
from xlsafety.sources.simulation import TRUTH, SimulationSettings, simulate_study
from xlsafety.sources.tables import output_languages, output_pairs, write_judgments, write_prompts
from xlsafety.tables import write_table


def main(snakemake):
    settings = dict(snakemake.params.settings)
    if settings["seed"] is None:
        settings["seed"] = snakemake.params.seed
    study = simulate_study(SimulationSettings(**settings), list(snakemake.params.languages))

    write_judgments(study.judgments, output_pairs(snakemake.output.judgments))
    write_prompts(study.prompts, output_languages(snakemake.output.prompts))
    write_table(study.truth, snakemake.output.truth, TRUTH)


run_step(snakemake, main)
