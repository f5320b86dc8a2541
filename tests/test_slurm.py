"""The tiny study submitted to a real SLURM cluster through the shipped profile.

`.ci/slurm/start.sh` starts a single-node cluster on 127.0.0.1 (with one GPU
that has no device behind it); these tests are skipped when no cluster responds.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
PROFILE = ROOT / "profiles" / "slurm"


def cluster_available() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "--noheader"], capture_output=True, text=True)
    return result.returncode == 0 and bool(result.stdout.strip())


def run_tiny(workdir: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(TINY), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not cluster_available():
        pytest.skip("no SLURM cluster responds; start one with .ci/slurm/start.sh")

    cluster = tmp_path_factory.mktemp("slurm")
    # One thread per generation job, as in the local run: a different thread
    # count changes floating-point summation order and so can change sampled text.
    submitted = run_tiny(
        cluster, "--profile", str(PROFILE), "--slurm-status-command", "squeue", "--slurm-no-account",
        "--slurm-keep-successful-logs", "--set-threads", "generate=1", "--verbose",
    )
    assert submitted.returncode == 0, submitted.stderr[-5000:]

    local = tmp_path_factory.mktemp("local")
    ran_locally = run_tiny(local, "--cores", "2")
    assert ran_locally.returncode == 0, ran_locally.stderr[-5000:]
    return cluster, submitted.stdout + submitted.stderr, local


def sbatch_calls(log: str, rule: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("sbatch call:") and f"rule_{rule}" in line]


def test_generation_jobs_request_a_gpu(runs):
    _, log, _ = runs
    calls = sbatch_calls(log, "generate")

    assert len(calls) == 4
    for call in calls:
        assert " -p gpu " in call
        assert " --gpus=1 " in call
        assert "--cpus-per-gpu=2" in call
        assert "'gpu" not in call


def test_cheap_jobs_grouped(runs):
    _, log, _ = runs
    grouped = [line for line in log.splitlines() if line.startswith("sbatch call:") and "group_judging" in line]

    assert len(grouped) >= 1
    assert len(grouped) < 4


def test_slurm_logs_name_job_ids(runs):
    cluster, _, _ = runs
    logs = list((cluster / ".snakemake" / "slurm_logs" / "rule_generate").rglob("*.log"))

    assert len(logs) == 4
    assert all(re.fullmatch(r"\d+\.log", path.name) for path in logs)


def test_results_equal_local_run(runs):
    cluster, _, local = runs
    # Outputs only: a generation output's kept checkpoint part in a hidden folder is the same file.
    compared = [
        *sorted((local / "results" / "generations").glob("*/*.parquet")),
        *sorted((local / "results" / "judgments").glob("*/*/*.parquet")),
        local / "results" / "matrix" / "refusal" / "cells.parquet",
        local / "results" / "irt" / "refusal" / "multigroup-2pl" / "parameters.parquet",
    ]

    assert len(compared) == 10
    for path in compared:
        twin = cluster / path.relative_to(local)
        pd.testing.assert_frame_equal(pd.read_parquet(twin), pd.read_parquet(path), check_exact=False, rtol=1e-9)


def test_profile_requests_gpus_as_plugin_documents():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    generate = profile["set-resources"]["generate"]

    assert profile["executor"] == "slurm"
    assert generate["gpu"] == 1
    assert isinstance(generate["cpus_per_gpu"], int)
    assert "gres" not in generate or not generate["gres"].startswith(("'", '"'))
