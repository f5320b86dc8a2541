import json

import pandas as pd

from xlsafety.dataset import sha256_of_file
from xlsafety.scripting import run_step
from xlsafety.summary import (
    RunFacts,
    calibration_section,
    judge_agreement_section,
    language_check_section,
    read_language_checks,
    render_summary,
    translation_quality_section,
)
from xlsafety.tables import CELLS, JUDGMENTS, read_table, write_text


def main(snakemake):
    sections = []
    prompts_count = None
    for position, judge in enumerate(snakemake.params.judges):
        cells = read_table(snakemake.input.cells[position], CELLS)
        fit_summary = json.loads(open(snakemake.input.fits[position]).read())
        first_judgments = next(path for path in snakemake.input.judgments if f"/judgments/{judge}/" in path)
        judge_version = read_table(first_judgments, JUDGMENTS)["judge_version"].iloc[0]
        tables = {
            name: pd.read_csv(next(path for path in snakemake.input.tables if path.endswith(f"/{judge}/{name}.csv")))
            for name in ("jsr", "theta", "gamma", "top_tau")
        }
        prompts_count = cells["id"].nunique()

        facts = RunFacts(
            dataset=snakemake.params.dataset_source,
            dataset_sha256=sha256_of_file(snakemake.input.dataset),
            prompts=prompts_count,
            languages=list(snakemake.params.languages),
            configurations=dict(snakemake.params.configurations),
            models=dict(snakemake.params.models),
            judge=judge,
            judge_version=judge_version,
        )
        totals = {"passes": int(cells["n_passes"].sum()), "invalid": int((cells["n_passes"] - cells["n_valid"]).sum())}
        sections.append(
            render_summary(facts, cells, totals, tables["jsr"], tables["theta"], tables["gamma"], tables["top_tau"], fit_summary)
        )

    # Simulated or imported judgments have no generations to check.
    if snakemake.input.generations:
        checks = pd.concat([read_language_checks(path) for path in snakemake.input.generations],
                           ignore_index=True)
        sections.append(language_check_section(checks))
    sections.extend(open(path, encoding="utf-8").read() for path in snakemake.input.fragments)
    if snakemake.input.translation_quality:
        sections.append(translation_quality_section(list(snakemake.input.translation_quality)))
    for path in snakemake.input.calibration:
        table = pd.read_parquet(path)
        is_calibration = path.endswith("calibration/summary.parquet")
        sections.append(calibration_section(table) if is_calibration else judge_agreement_section(table))
    write_text("\n\n".join(sections), snakemake.output[0])


run_step(snakemake, main)
