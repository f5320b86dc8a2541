from xlsafety.dataset import download
from xlsafety.errors import DatasetError
from xlsafety.scripting import run_step


def main(snakemake):
    if not snakemake.params.sha256:
        raise DatasetError(
            f"config key dataset.sha256: required for the URL source {snakemake.params.url}, "
            "so that a changed or corrupted download is detected"
        )
    download(snakemake.params.url, snakemake.params.sha256, snakemake.output[0])


run_step(snakemake, main)
