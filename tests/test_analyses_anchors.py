"""Anchor selection: Mantel-Haenszel and Lord's chi-square on hand-made and simulated data."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from xlsafety.analyses import figures
from xlsafety.analyses.anchors import (
    AnchorSettings,
    dif_table,
    ets_class,
    lord_statistics,
    mantel_haenszel,
    mean_sigma_link,
    score_strata,
    select_anchors,
)
from xlsafety.irt.anchors import read_anchors
from xlsafety.irt.simulate import simulate_cells
from xlsafety.tables import write_csv

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"

PLANTED_LANGUAGE = "l01"


# Mantel-Haenszel


def test_mantel_haenszel_two_strata_by_hand():
    # Rows: reference, focal; columns: safe, unsafe.
    tables = [[[10, 5], [5, 10]], [[8, 4], [6, 12]]]

    result = mantel_haenszel(tables)

    # sum(A D / N) / sum(B C / N) = (100/30 + 96/30) / (25/30 + 24/30) = 196 / 49.
    assert result["mh_odds_ratio"] == pytest.approx(4.0)
    assert result["delta_mh"] == pytest.approx(-2.35 * math.log(4.0))
    # E(A) = 15 * 15 / 30 + 12 * 14 / 30, Var(A) = sum n_R n_F m_1 m_0 / (N^2 (N - 1)).
    expected = 7.5 + 5.6
    variance = (15 * 15 * 15 * 15 + 12 * 18 * 14 * 16) / (30**2 * 29)
    statistic = (abs(18 - expected) - 0.5) ** 2 / variance
    assert result["mh_chi2"] == pytest.approx(statistic)
    assert result["mh_p"] == pytest.approx(chi2.sf(statistic, 1))


def test_mantel_haenszel_one_stratum_is_plain_odds_ratio():
    result = mantel_haenszel([[[12, 3], [7, 9]]])

    assert result["mh_odds_ratio"] == pytest.approx(12 * 9 / (3 * 7))
    # With one stratum the Robins-Breslow-Greenland variance is Woolf's 1/a + 1/b + 1/c + 1/d.
    woolf = math.sqrt(1 / 12 + 1 / 3 + 1 / 7 + 1 / 9)
    assert result["delta_mh_se"] == pytest.approx(2.35 * woolf)


def test_mantel_haenszel_skips_single_response_strata():
    with_single = mantel_haenszel([[[10, 5], [5, 10]], [[1, 0], [0, 0]]])
    without = mantel_haenszel([[[10, 5], [5, 10]]])

    assert with_single == pytest.approx(without)


def test_mantel_haenszel_infinite_odds_class_c():
    result = mantel_haenszel([[[6, 4], [0, 10]], [[8, 2], [0, 10]]])

    assert result["mh_odds_ratio"] == math.inf
    assert result["delta_mh"] == -math.inf
    assert ets_class(result["delta_mh"], result["delta_mh_se"], result["mh_p"]) == "C"


def test_mantel_haenszel_all_safe_is_undefined():
    result = mantel_haenszel([[[5, 0], [4, 0]]])

    assert math.isnan(result["mh_odds_ratio"])
    assert math.isnan(result["delta_mh"])
    assert math.isnan(result["mh_chi2"])


@pytest.mark.parametrize(
    ("delta", "se", "p", "expected"),
    [
        (-0.5, 0.1, 0.001, "A"),
        (-2.0, 0.5, 0.20, "A"),
        (-1.2, 0.2, 0.01, "B"),
        (1.6, 1.0, 0.01, "B"),
        (-2.0, 0.2, 0.001, "C"),
        (1.8, 0.3, 0.001, "C"),
        (float("nan"), float("nan"), float("nan"), ""),
    ],
)
def test_ets_class(delta, se, p, expected):
    assert ets_class(delta, se, p, 0.05) == expected


def test_score_strata_keep_ties_together():
    scores = [0, 0, 0, 1, 2, 3, 3, 4, 5, 6]

    strata = score_strata(scores, 3)

    assert len(set(strata)) <= 3
    assert len(set(strata[:3])) == 1
    assert strata[5] == strata[6]
    assert list(strata) == sorted(strata)


# Lord's chi-square


def test_mean_sigma_link_known_values():
    slope, intercept = mean_sigma_link([0.0, 2.0, 4.0], [1.0, 2.0, 3.0], discrimination=True)

    assert slope == pytest.approx(2.0)
    assert intercept == pytest.approx(2.0 - 2.0 * 2.0)


def test_mean_sigma_link_without_discrimination_shifts_only():
    slope, intercept = mean_sigma_link([0.0, 2.0, 4.0], [1.0, 2.0, 3.0], discrimination=False)

    assert slope == 1.0
    assert intercept == pytest.approx(0.0)


def test_lord_statistics_by_hand():
    reference = pd.DataFrame({"id": [1], "b": [0.5], "b_se": [0.1], "a": [1.5], "a_se": [0.3]})
    focal = pd.DataFrame({"id": [1], "b": [0.2], "b_se": [0.2], "a": [1.0], "a_se": [0.2]})

    location_only = lord_statistics(reference, focal, 1.0, 0.1, discrimination=False).iloc[0]
    both = lord_statistics(reference, focal, 2.0, 0.0, discrimination=True).iloc[0]

    # b* = 0.2 + 0.1, so (0.5 - 0.3)^2 / (0.1^2 + 0.2^2).
    assert location_only["lord_chi2"] == pytest.approx(0.04 / 0.05)
    assert location_only["lord_df"] == 1
    assert location_only["lord_p"] == pytest.approx(chi2.sf(0.8, 1))
    # b* = 0.4 with se 0.4, a* = 0.5 with se 0.1.
    assert both["lord_chi2"] == pytest.approx(0.01 / (0.01 + 0.16) + 1.0 / (0.09 + 0.01))
    assert both["lord_df"] == 2


def planted_cells(seed: int, shift: float = 2.0) -> tuple[pd.DataFrame, int]:
    """Simulate cells without DIF (every tau 0) and shift one prompt's location in one language.

    The shifted prompt is the least hard one, so that it still has safe and
    unsafe passes after the shift. Returns the cells and that prompt's id.
    """
    simulation = simulate_cells(seed, configurations=40, prompts=16, languages=3, passes=5, anchors=16)
    cells = simulation.cells.copy()
    truth = simulation.truth
    prompt = int(np.argmin(truth["beta"]))
    planted = (cells["id"] == prompt) & (cells["language"] == PLANTED_LANGUAGE)
    configuration = cells.loc[planted, "configuration"].str.slice(1, 4).astype(int).to_numpy()
    language = simulation.languages.index(PLANTED_LANGUAGE)
    logit = truth["alpha"][prompt] * (
        truth["theta"][configuration] + truth["delta"][configuration, language]
        - truth["beta"][prompt] - truth["gamma"][language] - shift)
    rng = np.random.default_rng(seed + 1)
    cells.loc[planted, "n_safe"] = rng.binomial(5, 1 / (1 + np.exp(-logit)))
    return cells, prompt


# Share of prompts without planted DIF that Lord's screen may flag. The data
# follow the 2PL, so under the 1PL each prompt's language shift a_i * gamma_L
# differs with its a_i, and prompts with an extreme a look like DIF. On three
# simulations the 2PL flagged 0 to 3% of them and the 1PL 13 to 26%.
FALSE_FLAG_BOUND = {"2pl": 0.1, "1pl": 0.3}


@pytest.mark.parametrize("model", ["2pl", "1pl"])
def test_screens_flag_planted_dif(model):
    cells, prompt = planted_cells(11)

    dif = dif_table(cells, "en", AnchorSettings(model=model, count=8))
    anchors, dif = select_anchors(dif, 8)

    is_planted = (dif["id"] == prompt) & (dif["language"] == PLANTED_LANGUAGE)
    planted = dif[is_planted].iloc[0]
    assert planted["informative"]
    assert planted["lord_flagged"]
    assert planted["ets_class"] == "C"
    assert planted["delta_mh"] < 0
    assert dif.loc[~is_planted, "lord_flagged"].mean() < FALSE_FLAG_BOUND[model]
    assert prompt not in set(anchors["id"])
    assert len(anchors) == 8
    assert set(dif.loc[dif["selected"], "id"]) == set(anchors["id"])


def test_select_anchors_skips_prompts_without_variance():
    cells, _ = planted_cells(12)
    always_safe = cells["id"] == 0
    cells.loc[always_safe, "n_safe"] = cells.loc[always_safe, "n_valid"]

    anchors, dif = select_anchors(dif_table(cells, "en", AnchorSettings()), 40)

    assert 0 not in set(anchors["id"])
    assert not dif.loc[dif["id"] == 0, "informative"].any()
    assert len(anchors) < 16


def test_dif_table_without_focal_language_is_empty():
    cells, _ = planted_cells(13)
    reference_only = cells[cells["language"] == "en"]

    anchors, dif = select_anchors(dif_table(reference_only, "en", AnchorSettings()), 5)

    assert dif.empty
    assert anchors.empty


def test_anchor_settings_reject_unknown_model():
    with pytest.raises(ValueError, match="anchor selection model"):
        AnchorSettings(model="grm")


def test_anchor_file_reads_back_as_ids(tmp_path):
    path = tmp_path / "anchors.csv"
    write_csv(pd.DataFrame({"id": [7, 3], "min_lord_p": [0.9, 0.8], "max_abs_delta_mh": [0.1, 0.2]}), path)

    assert read_anchors(str(path)) == [3, 7]


def test_empty_anchor_file_reads_back_as_no_ids(tmp_path):
    path = tmp_path / "anchors.csv"
    write_csv(pd.DataFrame({"id": [], "min_lord_p": [], "max_abs_delta_mh": []}), path)

    assert read_anchors(str(path)) == []


def test_dif_figure_writes_png(tmp_path):
    cells, _ = planted_cells(14)
    _, dif = select_anchors(dif_table(cells, "en", AnchorSettings(count=4)), 4)

    figures.dif_screen(dif, 0.05, tmp_path / "dif.png")
    figures.dif_screen(dif.assign(delta_mh=-np.inf), 0.05, tmp_path / "infinite.png")
    figures.dif_screen(dif.iloc[0:0], 0.05, tmp_path / "empty.png")

    assert (tmp_path / "dif.png").stat().st_size > 0
    assert (tmp_path / "empty.png").stat().st_size > 0
    assert (tmp_path / "infinite.png").stat().st_size > 0


def test_auto_anchors_feed_every_fit(tmp_path):
    snakemake = str(Path(sys.executable).parent / "snakemake")
    command = [snakemake, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile", str(TINY),
               "-n", "-p", "--config", "irt={anchors: auto}"]

    result = subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert result.returncode == 0, result.stderr[-3000:]
    jobs = result.stdout.split("\n\n")
    irt_jobs = [job for job in jobs if "rule irt:" in job]
    validation_jobs = [job for job in jobs if "rule analysis_validation:" in job]
    assert irt_jobs
    assert all("results/anchors/refusal/anchors.csv" in job for job in irt_jobs + validation_jobs)
