"""Analyses on small synthetic frames whose results are known by hand."""

import logging
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from xlsafety.analyses import figures
from xlsafety.analyses.common import ability, irt_probability, pooled_rates, prompt_tags
from xlsafety.analyses.dimensionality import category_concordance, kendall_w, q3_by_pair_type, scree
from xlsafety.analyses.english_worse import english_worse, english_worse_counts
from xlsafety.analyses.fragment import render_fragment
from xlsafety.analyses.gap import free_tau, tau_by_category, tau_by_language, tau_vs_quality, top_tau
from xlsafety.analyses.jsr import ability_jsr_correlation, jsr_intervals, jsr_with_ability, wilson_interval
from xlsafety.analyses.uncertainty import binary_entropy, cell_entropy, mean_entropy
from xlsafety.analyses.validation import (
    assign_folds,
    binomial_log_loss,
    cross_validate,
    irt_predictor,
    no_tau_predictor,
    predict_additive,
    predict_configuration,
    predict_intercept,
    score_predictions,
    split_labels,
    weighted_auc,
)
from xlsafety.irt import FitOptions


def cells_frame(rows) -> pd.DataFrame:
    """Build cells from (configuration, id, language, n_valid, n_safe) tuples."""
    frame = pd.DataFrame(rows, columns=["configuration", "id", "language", "n_valid", "n_safe"])
    return frame.assign(n_passes=frame["n_valid"], mean_score=np.nan)


def parameters_frame(rows) -> pd.DataFrame:
    """Build a long parameter table from (parameter, configuration, id, language, estimate) tuples."""
    frame = pd.DataFrame(rows, columns=["parameter", "configuration", "id", "language", "estimate"])
    return frame.assign(id=frame["id"].astype("Int64"), fixed=False)


PROMPTS = pd.DataFrame(
    {
        "id": [1, 2, 3],
        "language": "en",
        "text": ["one", "two", "three"],
        "tags": [["weapons", "violence"], ["weapons"], ["fraud"]],
        "source": "test",
    }
)


# Common helpers


def test_pooled_rates_sum_passes():
    cells = cells_frame([("a", 1, "en", 2, 1), ("a", 2, "en", 2, 2), ("b", 1, "en", 0, 0)])

    rates = pooled_rates(cells, ["configuration"]).set_index("configuration")

    assert rates.loc["a", "n_valid"] == 4
    assert rates.loc["a", "jsr"] == pytest.approx(0.25)
    assert math.isnan(rates.loc["b", "jsr"])


def test_irt_probability_known_logit():
    parameters = parameters_frame(
        [
            ("theta", "a", None, None, 1.0),
            ("delta", "a", None, "th", 0.5),
            ("beta", None, 1, None, 0.5),
            ("gamma", None, None, "th", 0.25),
            ("tau", None, 1, "th", 0.25),
            ("alpha", None, 1, None, 2.0),
        ]
    )
    cells = cells_frame([("a", 1, "th", 1, 1), ("a", 1, "en", 1, 1)])

    probability = irt_probability(cells, parameters)

    # th: 2 * ((1 + 0.5) - (0.5 + 0.25 + 0.25)) = 1; en: 2 * (1 - 0.5) = 1 as well.
    assert probability == pytest.approx([expit(1.0), expit(1.0)])


def test_irt_probability_without_alpha_uses_one():
    parameters = parameters_frame([("theta", "a", None, None, 2.0), ("beta", None, 1, None, 1.0)])

    probability = irt_probability(cells_frame([("a", 1, "en", 1, 1)]), parameters)

    assert probability == pytest.approx([expit(1.0)])


def test_prompt_tags_one_row_per_tag():
    tags = prompt_tags(PROMPTS)

    assert sorted(tags.itertuples(index=False, name=None)) == [
        (1, "violence"), (1, "weapons"), (2, "weapons"), (3, "fraud"),
    ]


# JSR


def test_wilson_interval_known_values():
    lower, upper = wilson_interval([5, 0, 3], [10, 10, 0])

    assert lower[0] == pytest.approx(0.2366, abs=1e-4)
    assert upper[0] == pytest.approx(0.7634, abs=1e-4)
    assert lower[1] == 0.0
    assert upper[1] == pytest.approx(3.8415 / 13.8415, abs=1e-4)
    assert math.isnan(lower[2])
    assert math.isnan(upper[2])


def test_jsr_intervals_pool_prompts():
    cells = cells_frame([("a", 1, "en", 4, 4), ("a", 2, "en", 6, 1), ("a", 1, "bn", 2, 0)])

    table = jsr_intervals(cells).set_index(["configuration", "language"])

    assert table.loc[("a", "en"), "jsr"] == pytest.approx(0.5)
    assert table.loc[("a", "en"), "n_unsafe"] == 5
    assert table.loc[("a", "bn"), "resource"] == "low"
    assert table.loc[("a", "en"), "jsr_lower"] < 0.5 < table.loc[("a", "en"), "jsr_upper"]


def test_jsr_with_ability_reference_delta_zero():
    cells = cells_frame([("a", 1, "en", 2, 2), ("a", 1, "bn", 2, 0)])
    parameters = parameters_frame([("theta", "a", None, None, 1.5), ("delta", "a", None, "bn", -2.0)])

    table = jsr_with_ability(jsr_intervals(cells), parameters).set_index("language")

    assert table.loc["en", "ability"] == pytest.approx(1.5)
    assert table.loc["bn", "ability"] == pytest.approx(-0.5)


def test_ability_jsr_correlation_negative_and_degenerate():
    table = pd.DataFrame({"jsr": [0.1, 0.5, 0.9], "ability": [2.0, 0.0, -1.0]})

    assert ability_jsr_correlation(table) == pytest.approx(-1.0)
    assert math.isnan(ability_jsr_correlation(table.head(2)))


# Uncertainty


def test_binary_entropy_known_values():
    assert binary_entropy([0.0, 0.5, 1.0, 0.25]) == pytest.approx([0.0, 1.0, 0.0, 0.811278], abs=1e-6)


def test_cell_entropy_needs_two_valid_passes():
    cells = cells_frame([("a", 1, "en", 1, 0), ("a", 2, "en", 2, 1), ("a", 3, "bn", 4, 4)])

    entropy = cell_entropy(cells, min_valid=2)

    assert list(entropy["id"]) == [2, 3]
    assert list(entropy["entropy"]) == pytest.approx([1.0, 0.0])


def test_mean_entropy_by_resource_in_level_order():
    cells = cells_frame([("a", 1, "bn", 2, 1), ("a", 1, "zh", 2, 2), ("a", 1, "en", 2, 1), ("a", 2, "en", 2, 2)])

    table = mean_entropy(cell_entropy(cells), "resource")

    assert list(table["resource"]) == ["reference", "high", "low"]
    assert list(table["mean_entropy"]) == pytest.approx([0.5, 0.0, 1.0])
    assert list(table["share_uncertain"]) == pytest.approx([0.5, 0.0, 1.0])


def test_cell_entropy_without_repeated_passes_warns(caplog):
    with caplog.at_level(logging.WARNING):
        entropy = cell_entropy(cells_frame([("a", 1, "en", 1, 1)]))

    assert entropy.empty
    assert "no cell has 2 or more valid passes" in caplog.text


# English-worse

WORSE_CELLS = cells_frame(
    [
        ("a", 1, "en", 10, 2), ("a", 1, "bn", 10, 8), ("a", 1, "sw", 10, 8), ("a", 1, "zh", 10, 0),
        ("b", 1, "en", 10, 9), ("b", 1, "bn", 10, 5), ("b", 1, "sw", 10, 5), ("b", 1, "zh", 10, 10),
    ]
)
WORSE_PARAMETERS = parameters_frame(
    [
        ("theta", "a", None, None, -1.0), ("delta", "a", None, "bn", 1.0), ("delta", "a", None, "sw", 1.0),
        ("theta", "b", None, None, 1.0), ("delta", "b", None, "bn", -1.0), ("delta", "b", None, "sw", -3.0),
    ]
)


def test_english_worse_flags_by_both_criteria():
    table = english_worse(WORSE_CELLS, WORSE_PARAMETERS).set_index("configuration")

    assert table.loc["a", "jsr_reference"] == pytest.approx(0.8)
    assert table.loc["a", "jsr_comparison"] == pytest.approx(0.2)
    assert bool(table.loc["a", "worse_by_jsr"]) is True
    assert bool(table.loc["b", "worse_by_jsr"]) is False
    assert table.loc["a", "ability_comparison"] == pytest.approx(0.0)
    assert table.loc["b", "ability_comparison"] == pytest.approx(-1.0)
    assert bool(table.loc["a", "worse_by_ability"]) is True
    assert bool(table.loc["b", "worse_by_ability"]) is False
    assert table.loc["a", "comparison_languages"] == "bn sw"


def test_english_worse_counts_name_configurations():
    counts = english_worse_counts(english_worse(WORSE_CELLS, WORSE_PARAMETERS)).set_index("criterion")

    assert counts.loc["jsr", "english_worse"] == 1
    assert counts.loc["jsr", "assessed"] == 2
    assert counts.loc["ability", "configurations"] == "a"


def test_english_worse_without_low_languages(caplog):
    cells = WORSE_CELLS[WORSE_CELLS["language"].isin(["en", "zh"])]

    with caplog.at_level(logging.WARNING):
        table = english_worse(cells, WORSE_PARAMETERS)
    counts = english_worse_counts(table).set_index("criterion")

    assert table["worse_by_jsr"].isna().all()
    assert table["worse_by_ability"].isna().all()
    assert counts.loc["jsr", "assessed"] == 0
    assert "no low-resource language" in caplog.text


# Cross-lingual gap

TAU = parameters_frame(
    [
        ("tau", None, 1, "bn", 1.0), ("tau", None, 1, "zh", 0.0),
        ("tau", None, 2, "bn", -2.0), ("tau", None, 2, "zh", 0.5),
        ("tau", None, 3, "bn", 0.25), ("tau", None, 3, "zh", 0.25),
        ("beta", None, 1, None, 3.0),
    ]
)


def test_free_tau_drops_fixed_cells():
    parameters = TAU.copy()
    parameters.loc[parameters["id"] == 3, "fixed"] = True

    tau = free_tau(parameters)

    assert sorted(tau["id"].unique()) == [1, 2]
    assert len(tau) == 4


def test_top_tau_orders_by_magnitude():
    table = top_tau(free_tau(TAU), PROMPTS, 2)

    assert list(table["tau"]) == [-2.0, 1.0]
    assert list(table["tags"]) == ["weapons", "weapons; violence"] or list(table["tags"]) == [
        "weapons", "violence; weapons"]
    assert list(table["resource"]) == ["low", "low"]


def test_tau_by_language_means():
    table = tau_by_language(free_tau(TAU)).set_index("language")

    assert table.loc["bn", "mean_tau"] == pytest.approx(-0.25)
    assert table.loc["bn", "mean_abs_tau"] == pytest.approx(3.25 / 3)
    assert table.loc["zh", "cells"] == 3


def test_tau_by_category_counts_every_tag():
    table = tau_by_category(free_tau(TAU), PROMPTS, resamples=500, seed=1).set_index("tag")

    assert table.loc["weapons", "prompts"] == 2
    assert table.loc["weapons", "mean_tau"] == pytest.approx(-0.125)
    assert table.loc["violence", "mean_tau"] == pytest.approx(0.5)
    assert math.isnan(table.loc["violence", "lower"])
    assert table.loc["weapons", "lower"] <= -0.125 <= table.loc["weapons", "upper"]
    # Resampling the two weapons prompts gives means between their own means, -0.75 and 0.5.
    assert table.loc["weapons", "lower"] >= -0.75
    assert table.loc["weapons", "upper"] <= 0.5


def test_tau_by_category_is_seeded():
    first = tau_by_category(free_tau(TAU), PROMPTS, resamples=200, seed=5)
    second = tau_by_category(free_tau(TAU), PROMPTS, resamples=200, seed=5)

    pd.testing.assert_frame_equal(first, second)


# Dimensionality


def rates_cells(rates: dict[int, list[int]], languages=("en",), valid: int = 4) -> pd.DataFrame:
    """Cells with `rates[id][j]` safe passes of `valid` for configuration j in every language."""
    rows = [
        (f"c{j}", prompt, language, valid, safe)
        for prompt, values in rates.items()
        for j, safe in enumerate(values)
        for language in languages
    ]
    return cells_frame(rows)


def test_scree_single_factor():
    cells = rates_cells({1: [0, 1, 2, 4], 2: [0, 1, 2, 4], 3: [4, 3, 2, 0]})

    result = scree(cells)

    assert result.eigenvalues == pytest.approx([3.0, 0.0, 0.0], abs=1e-9)
    assert result.first_share == pytest.approx(1.0)


def test_scree_drops_constant_prompts(caplog):
    cells = rates_cells({1: [0, 1, 2, 4], 2: [1, 0, 3, 2], 3: [2, 2, 2, 2]})

    with caplog.at_level(logging.WARNING):
        result = scree(cells)

    assert len(result.eigenvalues) == 2
    assert "dropped 1 of 3 prompts" in caplog.text


@pytest.mark.parametrize(
    "rates",
    [{1: [0, 4], 2: [4, 0]}, {1: [1, 1, 1], 2: [2, 2, 2]}],
    ids=["two configurations", "all constant"],
)
def test_scree_degenerate_is_nan(rates, caplog):
    with caplog.at_level(logging.WARNING):
        result = scree(rates_cells(rates))

    assert math.isnan(result.first_share)
    assert len(result.eigenvalues) == 0
    assert caplog.records


def test_q3_by_pair_type_known_correlations():
    # All parameters absent, so every fitted P(safe) is 0.5 and residuals are shares - 0.5.
    parameters = parameters_frame([("theta", f"c{j}", None, None, 0.0) for j in range(4)])
    cells = pd.concat(
        [
            rates_cells({1: [0, 1, 2, 4]}, languages=("en", "th")),
            rates_cells({2: [0, 1, 2, 4], 3: [4, 3, 2, 0]}),
        ]
    )

    table = q3_by_pair_type(cells, parameters, PROMPTS).set_index("pair_type")

    assert table.loc["same prompt", "pairs"] == 1
    assert table.loc["same prompt", "mean_q3"] == pytest.approx(1.0)
    assert table.loc["same category", "pairs"] == 2
    assert table.loc["same category", "mean_q3"] == pytest.approx(1.0)
    assert table.loc["different category", "pairs"] == 3
    assert table.loc["different category", "mean_q3"] == pytest.approx(-1.0)


def test_q3_two_configurations_is_nan(caplog):
    cells = rates_cells({1: [0, 4], 2: [4, 0]})

    with caplog.at_level(logging.WARNING):
        table = q3_by_pair_type(cells, parameters_frame([]), PROMPTS)

    assert table["mean_q3"].isna().all()
    assert (table["pairs"] == 0).all()
    assert "need at least 3" in caplog.text


def test_kendall_w_known_values():
    assert kendall_w(np.array([[1.0, 2, 3], [1, 2, 3], [1, 2, 3]])) == pytest.approx(1.0)
    assert kendall_w(np.array([[1.0, 2, 3], [3, 2, 1]])) == pytest.approx(0.0)
    # Rank sums 4, 6, 8 around 6 give S = 8, so W = 12 * 8 / (9 * 24).
    assert kendall_w(np.array([[1.0, 2, 3], [1, 3, 2], [2, 1, 3]])) == pytest.approx(96 / 216)
    assert math.isnan(kendall_w(np.array([[1.0, 1, 1], [2, 2, 2]])))


def test_category_concordance_identical_rankings():
    # Prompt 1 is never safe, prompt 2 half safe, prompt 3 always safe in every configuration.
    cells = rates_cells({1: [0, 0, 0], 2: [2, 2, 2], 3: [4, 4, 4]})

    result = category_concordance(cells, PROMPTS)

    assert result.categories == 3
    assert result.configurations == 3
    assert result.w == pytest.approx(1.0)
    assert result.p_value < 0.1


def test_category_concordance_few_configurations_is_nan(caplog):
    with caplog.at_level(logging.WARNING):
        result = category_concordance(rates_cells({1: [0, 1], 3: [4, 3]}), PROMPTS)

    assert math.isnan(result.w)
    assert "Kendall's W needs 3 configurations" in caplog.text


# Predictive validation


def test_binomial_log_loss_known_value():
    assert binomial_log_loss([1, 2], [2, 2], [0.5, 1.0]) == pytest.approx(2 * math.log(2) / 4)


def test_weighted_auc_cases():
    assert weighted_auc([2, 0], [2, 2], [0.9, 0.1]) == pytest.approx(1.0)
    assert weighted_auc([1, 1], [2, 2], [0.3, 0.3]) == pytest.approx(0.5)
    # One safe and one unsafe pass at 0.8, one unsafe at 0.2: one win, one tie.
    assert weighted_auc([1, 0], [2, 1], [0.8, 0.2]) == pytest.approx(0.75)
    assert math.isnan(weighted_auc([2, 2], [2, 2], [0.1, 0.9]))


def test_assign_folds_balanced_and_seeded():
    cells = pd.DataFrame({"x": range(11)})

    folds = assign_folds(cells, 3, seed=4)

    assert sorted(np.bincount(folds)) == [3, 4, 4]
    assert (folds == assign_folds(cells, 3, seed=4)).all()
    assert not (folds == assign_folds(cells, 3, seed=5)).all()


def test_baseline_predictors():
    train = cells_frame([("a", 1, "en", 4, 3), ("b", 1, "en", 4, 1)])
    test = cells_frame([("a", 2, "en", 1, 1), ("c", 2, "en", 1, 1)])

    assert predict_intercept(train, test) == pytest.approx([0.5, 0.5])
    assert predict_configuration(train, test) == pytest.approx([3.5 / 5, 0.5])


def test_additive_recovers_effects():
    configurations = {"a": 1.0, "b": -1.0}
    prompts = {1: 0.5, 2: -0.5, 3: 0.0}
    languages = {"en": 0.0, "bn": -1.0}
    rows = []
    for configuration, c in configurations.items():
        for prompt, p in prompts.items():
            for language, effect in languages.items():
                rows.append((configuration, prompt, language, 20000, round(20000 * expit(c + p + effect))))
    cells = cells_frame(rows)

    predicted = predict_additive(cells, cells)

    expected = expit([configurations[c] + prompts[i] + languages[lang] for c, i, lang in
                      cells[["configuration", "id", "language"]].itertuples(index=False)])
    assert predicted == pytest.approx(expected, abs=0.01)


def test_cross_validate_predicts_every_cell():
    cells = rates_cells({1: [0, 1, 2, 4], 2: [1, 2, 3, 4]}, languages=("en", "bn"))
    cells.loc[0, ["n_valid", "n_safe"]] = 0

    predictions = cross_validate(cells, {"intercept": predict_intercept, "additive": predict_additive}, 4, seed=0)
    scores = score_predictions(predictions, ["intercept", "additive"])

    assert len(predictions) == len(cells) - 1
    assert predictions[["intercept", "additive"]].notna().all().all()
    assert set(scores["fold"]) == {"0", "1", "2", "3", "all"}
    pooled = scores[scores["fold"] == "all"].set_index("model")
    assert pooled.loc["intercept", "passes"] == predictions["n_valid"].sum()
    assert pooled.loc["additive", "log_loss"] < pooled.loc["intercept", "log_loss"]


def test_irt_predictor_uses_point_estimates():
    received = []

    def fake_fit(train, options):
        received.append(options)
        table = parameters_frame([("theta", "a", None, None, 2.0), ("beta", None, 1, None, 1.0)])
        return type("Result", (), {"parameters": table})()

    predictor = irt_predictor(fake_fit, FitOptions(model="multigroup-2pl"))
    probability = predictor(cells_frame([("a", 1, "en", 1, 1)]), cells_frame([("a", 1, "bn", 1, 0)]))

    assert probability == pytest.approx([expit(1.0)])
    assert received[0].standard_errors is False


# Summary fragment and figures


def test_render_fragment_lists_headlines():
    text = render_fragment(
        "refusal",
        pd.DataFrame({"jsr": [0.1, 0.5, 0.9], "ability": [2.0, 0.0, -1.0]}),
        pd.DataFrame({"resource": ["reference", "low"], "mean_entropy": [0.1, 0.4]}),
        pd.DataFrame({"criterion": ["jsr", "ability"], "assessed": [2, 2], "english_worse": [1, 0],
                      "configurations": ["a", np.nan]}),
        pd.DataFrame({"language": ["bn", "zh"], "mean_abs_tau": [0.9, 0.2]}),
        pd.DataFrame({"statistic": ["first_factor_share", "kendall_w"], "value": [0.8, np.nan]}),
        pd.DataFrame({"model": ["intercept"], "fold": ["all"], "log_loss": [0.25], "auc": [0.5]}),
    )

    assert text.startswith("## Analyses (refusal judge)")
    assert "theta + delta over configuration x language: -1.000" in text
    assert "low 0.400" in text
    assert "by jsr: 1 of 2 (a)" in text
    assert "by ability: 0 of 2\n" in text
    assert "`bn` (0.900)" in text
    assert "Kendall's W of harm-category rankings: NA" in text
    assert "intercept 0.2500 (0.500)" in text


def test_figures_write_png_with_and_without_data(tmp_path):
    jsr = jsr_with_ability(jsr_intervals(WORSE_CELLS), WORSE_PARAMETERS)
    entropy = mean_entropy(cell_entropy(WORSE_CELLS), "language").assign(resource="low")
    worse = english_worse(WORSE_CELLS, WORSE_PARAMETERS)
    tau = free_tau(TAU)
    scores = score_predictions(
        cross_validate(rates_cells({1: [0, 1, 2, 4]}, languages=("en", "bn")), {"intercept": predict_intercept}, 2, 0),
        ["intercept"],
    )
    drawings = {
        "jsr.png": lambda path: figures.jsr_vs_ability(jsr, path),
        "jsr_empty.png": lambda path: figures.jsr_vs_ability(jsr.iloc[0:0], path),
        "entropy.png": lambda path: figures.entropy_bars(entropy, path),
        "entropy_empty.png": lambda path: figures.entropy_bars(entropy.iloc[0:0], path),
        "worse.png": lambda path: figures.english_worse_panels(worse, path),
        "worse_empty.png": lambda path: figures.english_worse_panels(worse.assign(jsr_comparison=np.nan,
                                                                                  ability_comparison=np.nan), path),
        "tau.png": lambda path: figures.tau_panels(tau_by_category(tau, PROMPTS, 100, 0), tau_by_language(tau), path),
        "tau_empty.png": lambda path: figures.tau_panels(pd.DataFrame(columns=["tag", "mean_tau", "lower", "upper"]),
                                                         tau_by_language(tau.iloc[0:0]), path),
        "scree.png": lambda path: figures.scree_plot(np.array([2.5, 0.4, 0.1]), path),
        "scree_empty.png": lambda path: figures.scree_plot(np.array([]), path),
        "validation.png": lambda path: figures.validation_bars(scores, path),
    }

    for name, draw in drawings.items():
        draw(tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not list(tmp_path.glob(".*partial*"))


def test_ability_grid_covers_every_pair():
    grid = ability(WORSE_PARAMETERS, ["a", "b"], ["en", "bn", "zh"])

    assert len(grid) == 6
    assert grid.set_index(["configuration", "language"]).loc[("b", "zh"), "ability"] == pytest.approx(1.0)


def test_tau_vs_quality_per_language_and_pooled():
    tau = pd.DataFrame({"id": [1, 2, 3, 4, 1, 2], "language": ["fr"] * 4 + ["de"] * 2,
                        "tau": [0.8, 0.4, 0.1, -0.2, 0.3, 0.1]})
    # Prompt 5 has a chrF but no tau, so it is left out.
    quality = pd.DataFrame({"language": ["fr"] * 5 + ["de"] * 2, "id": [1, 2, 3, 4, 5, 1, 2],
                            "chrf": [20.0, 40.0, 60.0, 80.0, 90.0, 50.0, 70.0]})

    table = tau_vs_quality(tau, quality).set_index("language")

    assert list(table.index) == ["de", "fr", "all"]
    assert table.loc["fr", "cells"] == 4
    assert table.loc["fr", "spearman_rho"] == pytest.approx(-1.0)
    assert table.loc["fr", "mean_tau_low_chrf"] == pytest.approx(0.6)
    assert table.loc["fr", "mean_tau_high_chrf"] == pytest.approx(-0.05)
    assert math.isnan(table.loc["de", "pearson_r"])
    assert table.loc["all", "cells"] == 6
    assert table.loc["all", "pearson_r"] < 0


def test_tau_vs_quality_without_overlap_is_empty():
    tau = pd.DataFrame({"id": [1], "language": ["fr"], "tau": [0.5]})
    quality = pd.DataFrame({"language": ["de"], "id": [1], "chrf": [30.0]})

    assert tau_vs_quality(tau, quality).empty


def test_tau_quality_scatter_writes_png(tmp_path):
    tau = pd.DataFrame({"id": [1, 2], "language": ["fr", "fr"], "tau": [0.5, -0.1]})
    quality = pd.DataFrame({"language": ["fr", "fr"], "id": [1, 2], "chrf": [30.0, 70.0]})
    path = tmp_path / "tau_quality.png"

    figures.tau_quality_scatter(tau, quality, path)

    assert path.read_bytes()[:4] == b"\x89PNG"


def test_leave_one_language_out_keeps_reference():
    cells = rates_cells({1: [0, 1, 2, 4], 2: [1, 2, 3, 4]}, languages=("en", "bn", "sw"))

    labels = split_labels(cells, "leave-one-language-out", reference_language="en")
    predictions = cross_validate(cells, {"additive": predict_additive}, 5, seed=0,
                                 split="leave-one-language-out", reference_language="en")

    assert labels[cells["language"] == "en"].isna().all()
    assert set(predictions["fold"]) == {"bn", "sw"}
    assert set(predictions["language"]) == {"bn", "sw"}
    assert (predictions["split"] == "leave-one-language-out").all()


def test_leave_one_family_out_groups_configurations():
    cells = rates_cells({1: [0, 1, 2, 4], 2: [1, 2, 3, 4]}, languages=("en", "bn"))
    families = {"c0": "small", "c1": "small", "c2": "large", "c3": "large"}

    predictions = cross_validate(cells, {"intercept": predict_intercept}, 5, seed=0,
                                 split="leave-one-family-out", families=families)
    scores = score_predictions(predictions, ["intercept"])

    held = predictions.groupby("fold")["configuration"].agg(set).to_dict()
    assert held == {"large": {"c2", "c3"}, "small": {"c0", "c1"}}
    assert set(scores["fold"]) == {"large", "small", "all"}


def test_split_with_one_fold_is_skipped(caplog):
    cells = rates_cells({1: [0, 1, 2, 4]}, languages=("en", "bn"))

    predictions = cross_validate(cells, {"intercept": predict_intercept}, 5, seed=0,
                                 split="leave-one-family-out", families={f"c{j}": "one" for j in range(4)})

    assert predictions.empty
    assert "is skipped" in caplog.text


def test_no_tau_predictor_anchors_every_training_prompt():
    received = []

    def fake_fit(train, options):
        received.append(options)
        table = parameters_frame([("theta", "c0", None, None, 0.0)])
        return type("Result", (), {"parameters": table})()

    cells = rates_cells({3: [0, 4], 7: [1, 2]}, languages=("en",))
    no_tau_predictor(fake_fit, FitOptions(model="multigroup-2pl"))(cells, cells)

    assert received[0].anchors == [3, 7]
    assert received[0].standard_errors is False


def test_irt_probability_of_unidimensional_items():
    # The unidimensional models give each (prompt, language) its own beta.
    parameters = parameters_frame([("theta", "c0", None, None, 1.0), ("beta", None, 1, "en", 1.0),
                                   ("beta", None, 1, "bn", -1.0)])
    cells = pd.DataFrame({"configuration": ["c0", "c0"], "id": [1, 1], "language": ["en", "bn"]})

    probability = irt_probability(cells, parameters)

    assert probability == pytest.approx([0.5, expit(2.0)])


def test_one_held_out_language_still_validated():
    cells = rates_cells({1: [0, 1, 2, 4], 2: [1, 2, 3, 4]}, languages=("en", "bn"))

    predictions = cross_validate(cells, {"additive": predict_additive}, 5, seed=0,
                                 split="leave-one-language-out", reference_language="en")

    assert set(predictions["fold"]) == {"bn"}
    assert len(predictions) == 8
