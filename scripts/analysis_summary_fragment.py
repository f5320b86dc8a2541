import pandas as pd

from xlsafety.analyses.fragment import render_fragment
from xlsafety.scripting import run_step
from xlsafety.tables import write_text


def main(snakemake):
    tables = {name: pd.read_csv(path, keep_default_na=True) for name, path in snakemake.input.items()}
    text = render_fragment(
        snakemake.wildcards.judge,
        tables["jsr"],
        tables["entropy_by_resource"],
        tables["english_worse_counts"],
        tables["tau_by_language"],
        tables["dimensionality"],
        tables["validation"],
        anchors=tables["anchors"],
        dif=tables["dif"],
        model_comparison=tables["model_comparison"],
        item_fit=tables["item_fit"],
        person_fit=tables["person_fit"],
        information=tables["information"],
    )
    write_text(text, snakemake.output[0])


run_step(snakemake, main)
