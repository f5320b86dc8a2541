import json

from xlsafety.checkpoint import Checkpoint, checkpoint_folder, fingerprint_of
from xlsafety.generate import Decoding, PromptFormat, generate_language, load_prepared_model
from xlsafety.models import read_identity
from xlsafety.scripting import run_step
from xlsafety.tables import GENERATIONS, PROMPTS, read_table, write_table


def main(snakemake):
    spec = snakemake.params.spec
    prompts = read_table(snakemake.input.prompts, PROMPTS)
    identity = read_identity(snakemake.input.model)
    model, tokenizer = load_prepared_model(snakemake.input.model, snakemake.threads)
    model_identity = json.dumps(identity, sort_keys=True)

    # Everything that determines the rows; a checkpoint written under other settings is discarded.
    settings = {
        "spec": spec,
        "seed": snakemake.params.seed,
        "model_identity": model_identity,
        "prompts": prompts[["id", "text"]].to_dict("list"),
    }
    checkpoint = Checkpoint(checkpoint_folder(snakemake.output[0]), fingerprint_of(settings))

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
        model_identity=model_identity,
        checkpoint=checkpoint,
    )
    write_table(generations, snakemake.output[0], GENERATIONS)
    checkpoint.remove()


run_step(snakemake, main)
