import logging

from xlsafety.checkpoint import checkpoint_folder, fingerprint_of
from xlsafety.judges import judge_generations, make_judge, remove_judge_checkpoints
from xlsafety.scripting import run_step
from xlsafety.tables import GENERATIONS, JUDGMENTS, PROMPTS, check_row_count, read_table, write_table


def main(snakemake):
    generations = read_table(snakemake.input.generations, GENERATIONS)
    prompts = read_table(snakemake.input.prompts, PROMPTS)
    check_row_count(generations, snakemake.input.generations, len(prompts) * snakemake.params.passes)

    # httpx logs every request of an API judge at INFO level, which would bury the progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The judge model's answers are saved as they come, under a fingerprint of what determines them.
    # The params contain the models' names and endpoints but never an API key.
    resources = {
        "model_dir": snakemake.input.get("model"),
        "translation_model_dir": snakemake.input.get("translation_model"),
        "threads": snakemake.threads,
        "checkpoint_folder": checkpoint_folder(snakemake.output[0]),
        "fingerprint": fingerprint_of(snakemake.params.definition),
    }
    judge = make_judge(snakemake.wildcards.judge, [snakemake.wildcards.language], snakemake.config, **resources)
    write_table(judge_generations(judge, generations, prompts), snakemake.output[0], JUDGMENTS)

    remove_judge_checkpoints(judge)


run_step(snakemake, main)
