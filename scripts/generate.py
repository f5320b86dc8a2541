import logging

from xlsafety.backends import GenerationJob, create_backend
from xlsafety.checkpoint import Checkpoint, checkpoint_folder, fingerprint_of
from xlsafety.generate import Decoding, PromptFormat
from xlsafety.scripting import run_step
from xlsafety.tables import GENERATIONS, PROMPTS, read_table, write_table


def main(snakemake):
    spec = snakemake.params.spec
    prompts = read_table(snakemake.input.prompts, PROMPTS)

    # The API rule passes the endpoint that determines the rows; the local model rule passes none.
    endpoint = getattr(snakemake.params, "endpoint", None)
    if endpoint is None:
        backend = create_backend(
            snakemake.params.backend, spec["model"], snakemake.config["models"][spec["model"]],
            model_dir=snakemake.input.model,
            threads=snakemake.threads, batch_size=snakemake.config["generation"]["batch_size"],
            device=snakemake.params.device, dtype=snakemake.params.dtype,
        )
    else:
        # httpx logs every request at INFO level, which would bury the progress lines.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        # Retry and concurrency settings come from the config rather than params, so that
        # tuning them does not make Snakemake redo finished (and paid for) generations.
        settings = {**snakemake.config["models"][spec["model"]], **endpoint}
        backend = create_backend(endpoint["backend"], spec["model"], settings)

    # Everything that determines the rows; a checkpoint written under other settings is discarded.
    # The model identity names the endpoint and model but never contains an API key. The number of
    # passes and the prompts are left out, because each saved row is matched to a request by its
    # prompt id, pass, seed and prompt text: more passes or prompts reuse the rows already there.
    determining_settings = {
        "spec": {key: value for key, value in spec.items() if key != "passes"},
        "seed": snakemake.params.seed,
        "model_identity": backend.model_identity,
        # A local model's rows also depend on where it ran: bfloat16 on a GPU gives other text than float32.
        "precision": getattr(backend, "precision", None),
    }
    checkpoint = Checkpoint(checkpoint_folder(snakemake.output[0]), fingerprint_of(determining_settings))

    job = GenerationJob(
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
        checkpoint=checkpoint,
    )
    generations = backend.generate(prompts, job)
    write_table(generations, snakemake.output[0], GENERATIONS)
    checkpoint.keep(snakemake.output[0])


run_step(snakemake, main)
