from xlsafety.scripting import run_step
from xlsafety.tables import PROMPTS, read_table
from xlsafety.translate.pipeline import run_translation


def main(snakemake):
    source = read_table(snakemake.input.source, PROMPTS)
    run_translation(
        source,
        snakemake.params.settings,
        model=snakemake.input.get("model", snakemake.params.settings["model"]),
        back_model=snakemake.input.get("back_model", snakemake.params.settings["back_model"]),
        threads=snakemake.threads,
        translations_path=snakemake.output.translations,
        quality_path=snakemake.output.quality,
    )


run_step(snakemake, main)
