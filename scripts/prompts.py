from xlsafety.scripting import run_step
from xlsafety.tables import PROMPTS, read_table, write_table
from xlsafety.translate.dataset import dataset_prompts
from xlsafety.translate.pipeline import TRANSLATIONS


def main(snakemake):
    if "translation" in snakemake.input.keys():
        prompts = read_table(snakemake.input.translation, TRANSLATIONS)
    else:
        prompts = dataset_prompts(
            snakemake.input.dataset,
            snakemake.wildcards.language,
            snakemake.params.prompt_limit,
        )
    write_table(prompts, snakemake.output[0], PROMPTS)


run_step(snakemake, main)
