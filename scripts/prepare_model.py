from xlsafety.models import prepare_model
from xlsafety.scripting import run_step


def main(snakemake):
    prepare_model(snakemake.params.source, snakemake.output[0])


run_step(snakemake, main)
