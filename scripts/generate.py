import json

from xlsafety.generate import Decoding, PromptFormat, generate_language, load_prepared_model
from xlsafety.models import read_identity
from xlsafety.scripting import run_step
from xlsafety.tables import GENERATIONS, PROMPTS, read_table, write_table


def main(snakemake):
    spec = snakemake.params.spec
    prompts = read_table(snakemake.input.prompts, PROMPTS)
    identity = read_identity(snakemake.input.model)
    model, tokenizer = load_prepared_model(snakemake.input.model, snakemake.threads)

    generations = generate_language(
        prompts,
        model,
        tokenizer,
        configuration=snakemake.wildcards.configuration,
        model_name=spec["model"],
        decoding=Decoding(
            name=spec["decoding"],
            temperature=spec["temperature"],
            top_p=spec["top_p"],
            max_new_tokens=spec["max_new_tokens"],
            passes=spec["passes"],
            system_prompt=spec["system_prompt"],
        ),
        prompt_format=PromptFormat(spec["prompt_format"], spec["raw_template"], tuple(spec["stop_strings"])),
        study_seed=snakemake.params.seed,
        batch_size=snakemake.params.batch_size,
        model_identity=json.dumps(identity, sort_keys=True),
    )
    write_table(generations, snakemake.output[0], GENERATIONS)


run_step(snakemake, main)
