import logging

from xlsafety.dataset import language_prompts, read_dataset, select_prompt_ids
from xlsafety.scripting import run_step
from xlsafety.tables import PROMPTS, write_table


def main(snakemake):
    path = snakemake.input.dataset
    frame = read_dataset(path)
    ids = select_prompt_ids(frame, snakemake.params.prompt_limit)
    prompts = language_prompts(frame, snakemake.wildcards.language, ids, path)
    logging.getLogger(__name__).info(
        "%s: %d of %d prompts in %s", path, len(prompts), len(frame), snakemake.wildcards.language
    )
    write_table(prompts, snakemake.output[0], PROMPTS)


run_step(snakemake, main)
