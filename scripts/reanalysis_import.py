from pathlib import Path

from xlsafety.scripting import run_step
from xlsafety.sources.reanalysis import import_study
from xlsafety.sources.tables import output_languages, output_pairs, write_judgments, write_prompts
from xlsafety.tables import write_csv


def main(snakemake):
    judgments, prompts, configurations = import_study(
        Path(snakemake.input.data),
        dict(snakemake.params.settings),
        list(snakemake.params.languages),
        set(snakemake.params.known_languages),
    )

    write_judgments(judgments, output_pairs(snakemake.output.judgments))
    write_prompts(prompts, output_languages(snakemake.output.prompts))
    write_csv(configurations, snakemake.output.configurations)


run_step(snakemake, main)
