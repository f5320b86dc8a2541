"""The simulation self-check: simulated judged passes, the recovery table, and the workflow run on them."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from xlsafety.errors import ConfigError
from xlsafety.sources import prepare_source
from xlsafety.sources.simulation import (
    SimulationSettings,
    configuration_names,
    recovery_markdown,
    recovery_table,
    simulate_study,
)
from xlsafety.tables import JUDGMENTS, PROMPTS

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SIMULATION = ROOT / "config" / "simulation.yaml"
SMALL = {"configurations": 12, "prompts": 24, "passes": 6, "anchors": 5}
LANGUAGES = ["en", "th", "sw"]


def settings(**changes) -> SimulationSettings:
    values = {"configurations": 6, "prompts": 10, "passes": 4, "anchors": 2, "tau_scale": 0.5,
              "missing_share": 0.0, "invalid_share": 0.0, "seed": 11}
    return SimulationSettings(**{**values, **changes})


def small_config(tmp_path: Path, **simulation) -> Path:
    """Write the shipped simulation config at a small shape, with only the fast IRT model."""
    config = yaml.safe_load(SIMULATION.read_text())
    config["source"]["simulation"].update(SMALL, **simulation)
    config["languages"] = LANGUAGES
    config["irt"]["models"] = ["multigroup-2pl"]
    path = tmp_path / "simulation.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(*arguments, workdir: Path, configfile: Path):
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "--cores", "1", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


def test_simulated_passes_have_the_judgments_layout():
    study = simulate_study(settings(), ["en", "zh", "sw"])

    assert list(study.judgments.columns) == JUDGMENTS.names
    assert len(study.judgments) == 6 * 10 * 3 * 4
    assert study.judgments["score"].between(1, 5).all()
    assert (study.judgments["safe"] == (study.judgments["score"] >= 4)).all()
    passes = study.judgments.groupby(["configuration", "id", "language"])["pass"].agg(sorted)
    assert all(list(value) == [0, 1, 2, 3] for value in passes)
    assert set(study.judgments["configuration"]) == set(configuration_names(6))
    assert list(study.prompts.columns) == PROMPTS.names
    assert len(study.prompts) == 10 * 3


def test_simulated_truth_labels_and_anchors():
    study = simulate_study(settings(), ["en", "zh", "sw"])
    counts = study.truth["parameter"].value_counts().to_dict()

    assert counts == {"theta": 6, "delta": 12, "beta": 10, "gamma": 2, "tau": 20, "alpha": 10,
                      "step_2": 10, "step_3": 10, "step_5": 10}
    assert "en" not in set(study.truth["language"].dropna())
    anchored = study.truth[study.truth["anchor"]]
    assert set(anchored["id"]) == {0, 1}
    assert (anchored["value"] == 0).all()


def test_simulation_is_deterministic_for_a_seed():
    first = simulate_study(settings(), ["en", "zh"])
    second = simulate_study(settings(), ["en", "zh"])
    other = simulate_study(settings(seed=12), ["en", "zh"])

    pd.testing.assert_frame_equal(first.judgments, second.judgments)
    assert not first.judgments["score"].equals(other.judgments["score"])


def test_missing_cells_and_invalid_passes():
    study = simulate_study(settings(missing_share=0.3, invalid_share=0.2, passes=10), ["en", "zh"])
    cells = study.judgments.groupby(["configuration", "id", "language"]).size()
    invalid = study.judgments["score"] == 0

    assert 0.55 * 120 < len(cells) < 0.85 * 120
    assert 0.15 < invalid.mean() < 0.25
    assert study.judgments.loc[invalid, "safe"].isna().all()


def test_configuration_names_are_models_with_variants():
    names = configuration_names(7)

    assert names[:2] == ["sim-model-00_greedy", "sim-model-00_low-creativity"]
    assert names[5:] == ["sim-model-01_greedy", "sim-model-01_low-creativity"]
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.-]*_[a-z0-9][a-z0-9.-]*", name) for name in names)


def estimates_from_truth(truth: pd.DataFrame, noise: float, seed: int = 0) -> pd.DataFrame:
    """Return a parameter table whose estimates are the truth plus normal noise, with honest intervals."""
    rng = np.random.default_rng(seed)
    estimate = truth["value"] + rng.normal(0, noise, len(truth))
    se = max(noise, 1e-9)
    return truth.assign(estimate=estimate, se=se, lower=estimate - 1.96 * se,
                        upper=estimate + 1.96 * se, fixed=truth["anchor"])


def test_recovery_of_exact_estimates_is_perfect():
    truth = simulate_study(settings(), ["en", "zh", "sw"]).truth
    recovery = recovery_table(truth, {"multigroup-2pl": estimates_from_truth(truth, 0.0)})

    assert list(recovery["parameter"]) == ["theta", "delta", "beta", "gamma", "tau", "alpha",
                                           "step_2", "step_3", "step_5"]
    assert (recovery["coverage"] == 1.0).all()
    assert recovery.set_index("parameter").loc["tau", "count"] == 20 - 2 * 2
    assert np.isnan(recovery.set_index("parameter").loc["gamma", "correlation"])
    assert (recovery.dropna()["correlation"] > 0.999999).all()


def test_recovery_coverage_of_noisy_estimates():
    truth = simulate_study(settings(configurations=200, prompts=200), ["en", "zh", "sw"]).truth
    recovery = recovery_table(truth, {"m": estimates_from_truth(truth, 0.3)}).set_index("parameter")

    assert 0.9 < recovery.loc["tau", "coverage"] < 0.99
    assert abs(recovery.loc["theta", "bias"]) < 0.1
    assert 0.25 < recovery.loc["beta", "rmse"] < 0.35


def test_recovery_skips_families_labelled_otherwise():
    truth = simulate_study(settings(), ["en", "zh"]).truth
    per_item = estimates_from_truth(truth[truth["parameter"] == "beta"], 0.1).assign(language="zh")
    recovery = recovery_table(truth, {"2pl": per_item})

    assert recovery.empty


def test_recovery_markdown_lists_every_row():
    truth = simulate_study(settings(), ["en", "zh"]).truth
    recovery = recovery_table(truth, {"multigroup-2pl": estimates_from_truth(truth, 0.1)})
    text = recovery_markdown(recovery, "simulated (seed 11)")

    assert text.startswith("## Simulation self-check")
    assert "simulated (seed 11)" in text
    assert text.count("| multigroup-2pl |") == len(recovery)


def source_config(**simulation) -> dict:
    return {
        "seed": 3, "languages": ["en", "th"], "reference_language": "en", "language_metadata": {},
        "irt": {"anchors": []},
        "source": {"kind": "simulate", "simulation": {**settings().__dict__, "seed": None, **simulation}},
    }


def test_prepare_fills_anchors_and_configurations():
    config = source_config()
    source = prepare_source(config)

    assert config["irt"]["anchors"] == [0, 1]
    assert config["models"] == {}
    assert config["decoding"] == {}
    assert sorted(source.configurations) == sorted(configuration_names(6))
    assert source.judge == "simulated"
    assert "seed 3" in source.label


def test_prepare_keeps_configured_anchors():
    config = source_config()
    config["irt"]["anchors"] = [4]
    prepare_source(config)

    assert config["irt"]["anchors"] == [4]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"simulation": {"anchors": 10}}, "source.simulation.anchors"),
        ({"languages": ["en"]}, "at least one other"),
        ({"languages": ["en", "xx"]}, "no metadata for ['xx']"),
        ({"reference_language": "sw"}, "reference_language"),
    ],
)
def test_prepare_rejects_bad_settings(change, message):
    config = source_config(**change.pop("simulation", {}))
    config.update(change)

    with pytest.raises(ConfigError, match=re.escape(message)):
        prepare_source(config)


def test_dry_run_schedules_no_generation(tmp_path):
    result = snakemake("-n", workdir=tmp_path, configfile=small_config(tmp_path))
    jobs = dict(re.findall(r"^([a-z_]+)\s+(\d+)$", result.stdout.split("Job stats:", 1)[-1], flags=re.M))

    assert result.returncode == 0, result.stderr[-3000:]
    assert jobs["simulate"] == "1"
    assert jobs["simulation_recovery"] == "1"
    for rule in ("prompts", "fetch_dataset", "prepare_model", "generate", "judge", "translate"):
        assert rule not in jobs


def test_shipped_config_has_the_paper_shape(tmp_path):
    result = snakemake("-n", "--quiet", "rules", workdir=tmp_path, configfile=SIMULATION)
    config = yaml.safe_load(SIMULATION.read_text())["source"]["simulation"]

    assert result.returncode == 0, result.stderr[-3000:]
    assert (config["configurations"], config["prompts"], config["passes"], config["anchors"]) == (61, 315, 10, 40)


@pytest.mark.slow
def test_simulation_recovered_end_to_end(tmp_path):
    configfile = small_config(tmp_path)
    run = snakemake(workdir=tmp_path, configfile=configfile)
    assert run.returncode == 0, run.stderr[-5000:]

    results = tmp_path / "results"
    judgments = pd.read_parquet(results / "judgments" / "simulated" / "sim-model-00_greedy" / "th.parquet")
    assert len(judgments) == SMALL["prompts"] * SMALL["passes"]
    cells = pd.read_parquet(results / "matrix" / "simulated" / "cells.parquet")
    assert len(cells) == SMALL["configurations"] * SMALL["prompts"] * len(LANGUAGES)

    recovery = pd.read_csv(results / "simulation" / "recovery.csv").set_index("parameter")
    parquet = pd.read_parquet(results / "simulation" / "recovery.parquet")
    assert len(parquet) == len(recovery)
    assert recovery.loc["theta", "correlation"] > 0.95
    assert recovery.loc["beta", "correlation"] > 0.9
    assert recovery.loc["alpha", "correlation"] > 0.7
    assert recovery.loc["tau", "correlation"] > 0.6
    assert recovery.loc["theta", "coverage"] >= 0.75
    assert recovery.loc["tau", "count"] == (SMALL["prompts"] - SMALL["anchors"]) * (len(LANGUAGES) - 1)

    summary = (results / "summary.md").read_text()
    assert "## Simulation self-check" in summary
    assert "simulated (seed" in summary
    assert (results / "analyses" / "simulated" / "summary_fragment.md").exists()

    rendered = snakemake("--report", "results/report.html", workdir=tmp_path, configfile=configfile)
    assert rendered.returncode == 0, rendered.stderr[-5000:]
    report = (results / "report.html").read_text()
    assert '"Simulation self-check"' in report
