"""The workflow as a user runs it: lint, dry runs, config errors and real end-to-end runs."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kept_rows import assert_only_generations_kept

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def snakemake(*arguments, workdir: Path, configfile: Path = ROOT / "config" / "config.yaml", timeout=1800):
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "--cores", "2", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """Parse the job stats table that a (dry) run prints."""
    table = output.split("Job stats:", 1)[1]
    return {rule: int(count) for rule, count in re.findall(r"^([a-z_]+)\s+(\d+)$", table, flags=re.M)}


def test_lint_is_clean():
    result = subprocess.run([SNAKEMAKE, "--lint"], cwd=ROOT, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_snakefmt_is_clean():
    snakefmt = str(Path(sys.executable).parent / "snakefmt")
    result = subprocess.run([snakefmt, "--check", "Snakefile", "rules"], cwd=ROOT, capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_default_config_schedules_every_stage(tmp_path):
    result = snakemake("-n", workdir=tmp_path)
    counts = job_counts(result.stdout)

    assert result.returncode == 0, result.stderr
    assert counts["prompts"] == 10
    assert counts["prepare_model"] == 2
    assert counts["generate"] == 40
    assert counts["judge"] == 40
    assert counts["matrix"] == counts["summary"] == 1
    # The model comparison fits every one of the five IRT models.
    assert counts["irt"] == 5


def test_multijail_config_with_local_copy(tmp_path, multijail_path):
    override = f"dataset={{source: {multijail_path}, prompt_limit: 12}}"
    result = snakemake("-n", "--config", override, workdir=tmp_path, configfile=ROOT / "config" / "multijail.yaml")
    counts = job_counts(result.stdout)

    assert result.returncode == 0, result.stderr
    assert "fetch_dataset" not in counts
    assert counts["generate"] == 2 * 5 * 10


def test_multijail_download_scheduled(tmp_path):
    result = snakemake("-n", workdir=tmp_path, configfile=ROOT / "config" / "multijail.yaml")

    assert job_counts(result.stdout)["fetch_dataset"] == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("models={gemma3-270m: {prompt_format: chat}}", "models.gemma3-270m.prompt_format"),
        ("decoding={greedy: {passes: 3}}", "decoding.greedy.passes"),
        ("languages=[en, xx]", "no metadata for ['xx']"),
        ("irt={model: 3pl}", "3pl"),
        ("unknown_key=1", "unknown_key"),
    ],
)
def test_bad_config_rejected_before_any_job(tmp_path, override, message):
    result = snakemake("-n", "--config", override, workdir=tmp_path)

    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path):
    first = snakemake(workdir=tmp_path, configfile=TINY)
    assert first.returncode == 0, first.stderr[-5000:]

    results = tmp_path / "results"
    configurations = ["smollm2-135m_greedy", "smollm2-135m_sampled"]
    passes = {"smollm2-135m_greedy": 1, "smollm2-135m_sampled": 2}
    for language in ["en", "th"]:
        prompts = pd.read_parquet(results / "prompts" / f"{language}.parquet")
        assert len(prompts) == 3
        for configuration in configurations:
            generations = pd.read_parquet(results / "generations" / configuration / f"{language}.parquet")
            judgments = pd.read_parquet(results / "judgments" / "refusal" / configuration / f"{language}.parquet")
            assert len(generations) == 3 * passes[configuration]
            assert len(judgments) == len(generations)
            assert judgments["score"].isin([0, 2, 5]).all()
            assert generations["model_identity"].str.contains("sha256").all()

    assert_only_generations_kept(results)

    cells = pd.read_parquet(results / "matrix" / "refusal" / "cells.parquet")
    wide = pd.read_parquet(results / "matrix" / "refusal" / "wide.parquet")
    assert len(cells) == 2 * 3 * 2
    assert wide.shape == (2, 1 + 3 * 2)

    parameters = pd.read_parquet(results / "irt" / "refusal" / "multigroup-2pl" / "parameters.parquet")
    csv = pd.read_csv(results / "irt" / "refusal" / "multigroup-2pl" / "parameters.csv")
    fit = json.loads((results / "irt" / "refusal" / "multigroup-2pl" / "fit.json").read_text())
    assert parameters["parameter"].value_counts().to_dict() == {
        "tau": 3, "beta": 3, "alpha": 3, "theta": 2, "delta": 2, "gamma": 1,
    }
    assert len(csv) == len(parameters)
    assert fit["cells"] == 12
    theta = pd.read_parquet(results / "irt" / "refusal" / "multigroup-2pl" / "theta.parquet")
    assert theta["configuration"].tolist() == sorted(configurations)

    for table in ["jsr", "theta", "gamma", "top_tau"]:
        assert (results / "summary" / "refusal" / f"{table}.csv").exists()
    summary = (results / "summary.md").read_text()
    for heading in ["## What was run", "## JSR by configuration and language", "## Theta per configuration",
                    "## Gamma per language", "## Largest cross-lingual gaps (tau)"]:
        assert heading in summary

    second = snakemake("-n", workdir=tmp_path, configfile=TINY)
    assert second.returncode == 0
    assert "Nothing to be done" in second.stdout + second.stderr

    check_incremental_reruns(tmp_path)


AGGREGATES = {
    # The model comparison fits every one of the five IRT models.
    "matrix": 1, "irt": 5, "summary_tables": 1, "summary": 1, "all": 1,
    "analysis_jsr": 1, "analysis_uncertainty": 1, "analysis_english_worse": 1, "analysis_gap": 1,
    "analysis_dimensionality": 1, "analysis_validation": 1, "analysis_summary_fragment": 1,
    "analysis_anchors": 1, "analysis_model_comparison": 1, "analysis_item_fit": 1, "analysis_information": 1,
}
AGGREGATE_JOBS = sum(AGGREGATES.values())


def scheduled(workdir: Path, *overrides: str) -> tuple[dict[str, int], set[str]]:
    """Return the job counts and the languages of the jobs that a dry run with `overrides` schedules."""
    result = snakemake("-n", "--config", *overrides, workdir=workdir, configfile=TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return job_counts(result.stdout), set(re.findall(r"language=([a-z]+)", result.stdout))


def check_incremental_reruns(workdir: Path):
    """Adding a language or a configuration schedules only the new work and the aggregates."""
    # A new language is calibrated on its own; the calibration summary gathers the languages.
    counts, languages = scheduled(workdir, "languages=[en, th, zh]")
    assert counts == {"prompts": 1, "generate": 2, "judge": 2, "calibrate": 1, **AGGREGATES,
                      "calibration_summary": 1, "total": 7 + AGGREGATE_JOBS}
    assert languages == {"zh"}

    counts, languages = scheduled(workdir, "decoding={hot: {temperature: 1.0, max_new_tokens: 16, passes: 1}}")
    assert counts == {"generate": 2, "judge": 2, **AGGREGATES, "total": 4 + AGGREGATE_JOBS}
    assert languages == {"en", "th"}

    counts, languages = scheduled(workdir, "languages=[en]")
    assert counts == {**AGGREGATES, "calibration_summary": 1, "total": AGGREGATE_JOBS + 1}
    assert languages == set()

    # The batch size and threads only tune how fast the text is generated.
    result = snakemake("-n", "--config", "generation={batch_size: 3, threads: 2}", workdir=workdir, configfile=TINY)
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_multijail_study_end_to_end(tmp_path, multijail_path):
    overrides = [
        f"dataset={{source: {multijail_path}, prompt_limit: 2}}",
        "languages=[en, bn, sw]",
        "configurations=[{model: smollm2-135m, decoding: [greedy]}]",
        "decoding={greedy: {max_new_tokens: 12}}",
    ]
    result = snakemake("--config", *overrides, workdir=tmp_path, configfile=ROOT / "config" / "multijail.yaml")
    assert result.returncode == 0, result.stderr[-5000:]

    cells = pd.read_parquet(tmp_path / "results" / "matrix" / "refusal" / "cells.parquet")
    summary = (tmp_path / "results" / "summary.md").read_text()
    assert len(cells) == 2 * 3
    assert set(cells["configuration"]) == {"smollm2-135m_greedy"}
    assert "2798ed6fe470b80b1f486976e0fb3baa3ce008e62b6ca0abbf2e1ed5b1dfb355" in summary
