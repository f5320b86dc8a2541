"""The tiny study with its analyses, rendered as Snakemake's HTML report.

This needs rules/analyses.smk included from the Snakefile and the summary
fragments listed in final_outputs() in rules/common.smk.
"""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TINY = ROOT / "tests" / "configs" / "tiny.yaml"

ANALYSIS_FILES = [
    "jsr.csv", "jsr_vs_ability.png",
    "entropy_by_language.csv", "entropy_by_resource.csv", "entropy.png",
    "english_worse.csv", "english_worse_counts.csv", "english_worse.png",
    "top_tau.csv", "tau_by_category.csv", "tau_by_language.csv", "tau.png",
    "eigenvalues.csv", "q3.csv", "dimensionality.csv", "scree.png",
    "validation.csv", "validation_predictions.csv", "validation.png",
    "model_comparison.csv", "model_comparison.png", "item_fit.csv", "person_fit.csv", "fit.png",
    "information.csv", "information.png",
    "summary_fragment.md",
]
ANCHOR_FILES = ["anchors.csv", "dif.csv", "dif.png"]
REPORT_SECTIONS = ["JSR", "Uncertainty", "English-worse", "Cross-lingual gap", "Dimensionality",
                   "Predictive validation", "Anchors", "Model selection and fit"]


def snakemake(*arguments, workdir: Path):
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(TINY), "--cores", "2", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


@pytest.mark.slow
def test_tiny_study_report_has_every_analysis(tmp_path):
    run = snakemake(workdir=tmp_path)
    assert run.returncode == 0, run.stderr[-5000:]

    analyses = tmp_path / "results" / "analyses" / "refusal"
    missing = [name for name in ANALYSIS_FILES if not (analyses / name).exists()]
    assert not missing
    anchors = tmp_path / "results" / "anchors" / "refusal"
    assert not [name for name in ANCHOR_FILES if not (anchors / name).exists()]
    comparison = pd.read_csv(analyses / "model_comparison.csv")
    assert set(comparison["model"]) == {"1pl", "2pl", "multigroup-1pl", "multigroup-2pl", "grm"}

    jsr = pd.read_csv(analyses / "jsr.csv")
    assert len(jsr) == 2 * 2
    assert jsr["jsr"].between(0, 1).all()
    validation = pd.read_csv(analyses / "validation.csv")
    assert set(validation["model"]) == {"intercept", "configuration", "additive", "1pl",
                                        "multigroup-2pl without tau", "multigroup-2pl"}
    # The tiny study has one model family, so leave-one-family-out has nothing to train on.
    assert set(validation["split"]) == {"k-fold", "leave-one-language-out"}
    assert (analyses / "summary_fragment.md").read_text().startswith("## Analyses (refusal judge)")

    rendered = snakemake("--report", "results/report.html", workdir=tmp_path)
    assert rendered.returncode == 0, rendered.stderr[-5000:]

    report = (tmp_path / "results" / "report.html").read_text()
    assert "xlsafety measures how the safety guardrails" in report
    for section in REPORT_SECTIONS:
        assert f'"{section}"' in report, section
    for caption in ["Wilson score intervals", "Entropy in bits", "less safe in English", "bootstrap interval",
                    "Yen's Q3", "AUC 0.940", "Mantel-Haenszel", "infit", "Test information"]:
        assert caption in report, caption
