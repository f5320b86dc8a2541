"""Model selection and fit: information criteria, infit and outfit, person fit and test information."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from xlsafety.analyses import figures
from xlsafety.analyses.fit import (
    BINARY,
    GRADED,
    ability_grid,
    binomial_log_likelihood,
    cell_residuals,
    information_curves,
    item_keys,
    mean_squares,
    misfit_label,
    model_comparison,
    person_fit,
    safe_probability,
    standardised_mean_square,
)
from xlsafety.analyses.fragment import render_fragment
from xlsafety.irt import FitOptions, fit
from xlsafety.irt.simulate import simulate_cells


def cells_frame(rows) -> pd.DataFrame:
    """Build cells from (configuration, id, language, n_valid, n_safe) tuples."""
    frame = pd.DataFrame(rows, columns=["configuration", "id", "language", "n_valid", "n_safe"])
    return frame.assign(n_passes=frame["n_valid"], mean_score=np.nan)


def parameters_frame(rows) -> pd.DataFrame:
    """Build a long parameter table from (parameter, configuration, id, language, estimate) tuples."""
    frame = pd.DataFrame(rows, columns=["parameter", "configuration", "id", "language", "estimate"])
    return frame.assign(id=frame["id"].astype("Int64"), fixed=False)


# Information criteria


def summary(parameters, log_likelihood, aic, bic):
    return {"parameters": parameters, "cells": 10, "passes": 40, "log_likelihood": log_likelihood, "aic": aic,
            "bic": bic, "converged": True}


def test_model_comparison_deltas_within_response():
    summaries = {
        "1pl": summary(5, -20.0, 50.0, 60.0),
        "multigroup-2pl": summary(9, -10.0, 38.0, 55.0),
        "grm": summary(12, -30.0, 84.0, 100.0),
    }

    table = model_comparison(summaries, {"1pl": -20.0, "multigroup-2pl": -10.0, "grm": -11.0}).set_index("model")

    assert table.loc["multigroup-2pl", "delta_aic"] == 0.0
    assert table.loc["1pl", "delta_aic"] == pytest.approx(12.0)
    assert table.loc["1pl", "delta_bic"] == pytest.approx(5.0)
    assert table.loc["grm", "delta_aic"] == 0.0
    assert table.loc["grm", "response"] == GRADED
    assert table.loc["1pl", "response"] == BINARY
    assert table.loc["grm", "safe_log_likelihood"] == -11.0


def test_safe_log_likelihood_matches_each_fit():
    simulation = simulate_cells(2, configurations=8, prompts=6, languages=3, passes=4, anchors=2, graded=True)
    cells = simulation.cells

    for model in ("1pl", "2pl", "multigroup-1pl", "multigroup-2pl"):
        result = fit(cells, FitOptions(model=model, anchors=simulation.anchors, standard_errors=False))
        probability = safe_probability(cells, result.parameters)
        assert binomial_log_likelihood(cells, probability) == pytest.approx(result.summary["log_likelihood"]), model

    graded = fit(cells, FitOptions(model="grm", anchors=simulation.anchors, standard_errors=False))
    assert np.all((safe_probability(cells, graded.parameters) > 0) & (safe_probability(cells, graded.parameters) < 1))


def test_safe_probability_unidimensional_items():
    parameters = parameters_frame([
        ("theta", "a", None, None, 1.0),
        ("beta", None, 1, "en", 0.5),
        ("beta", None, 1, "th", -0.5),
        ("alpha", None, 1, "th", 2.0),
    ])
    cells = cells_frame([("a", 1, "en", 1, 1), ("a", 1, "th", 1, 1)])

    probability = safe_probability(cells, parameters)

    # en has no alpha row, so a = 1: sigmoid(1 - 0.5); th: sigmoid(2 (1 + 0.5)).
    assert probability == pytest.approx([expit(0.5), expit(3.0)])
    assert item_keys(parameters) == ["id", "language"]


def test_binomial_log_likelihood_by_hand():
    cells = cells_frame([("a", 1, "en", 3, 2), ("a", 2, "en", 1, 0)])

    value = binomial_log_likelihood(cells, [0.5, 0.25])

    assert value == pytest.approx(2 * math.log(0.5) + math.log(0.5) + math.log(0.75))


# Item and person fit


def test_infit_outfit_by_hand():
    # Cell 1: one pass, safe, p = 0.8. E = 0.8, W = 0.16, (k - E)^2 = 0.04, z^2 = 0.25.
    # Cell 2: four passes, one safe, p = 0.5. E = 2, W = 1, (k - E)^2 = 1, z^2 = 1.
    cells = cells_frame([("a", 1, "en", 1, 1), ("b", 1, "en", 4, 1)])

    table = mean_squares(cell_residuals(cells, [0.8, 0.5]), ["id"]).iloc[0]

    assert table["outfit"] == pytest.approx((0.25 + 1.0) / 2)
    assert table["infit"] == pytest.approx((0.04 + 1.0) / (0.16 + 1.0))
    assert table["cells"] == 2
    assert table["passes"] == 5
    assert table["misfit"] == "overfit"


def test_mean_squares_near_one_when_model_holds():
    rng = np.random.default_rng(0)
    probability = rng.uniform(0.2, 0.8, 4000)
    cells = cells_frame([("c", 1, "en", 5, 0)] * 4000).assign(n_safe=rng.binomial(5, probability))

    table = mean_squares(cell_residuals(cells, probability), ["id"]).iloc[0]

    assert table["infit"] == pytest.approx(1.0, abs=0.05)
    assert table["outfit"] == pytest.approx(1.0, abs=0.05)
    assert abs(table["infit_zstd"]) < 3
    assert table["misfit"] == ""


def test_standardised_mean_square_of_one():
    z = standardised_mean_square([1.0, 1.0, 2.0], [0.3, 0.0, 0.3])

    assert z[0] == pytest.approx(0.1)
    assert math.isnan(z[1])
    assert z[2] == pytest.approx((2 ** (1 / 3) - 1) * 10 + 0.1)


def test_misfit_labels():
    labels = misfit_label([1.0, 1.5, 0.5, 0.5, 1.0], [1.0, 1.0, 1.0, 1.4, 0.69])

    assert labels == ["", "underfit", "overfit", "underfit", "overfit"]


def test_person_fit_marks_reversed_configuration():
    probability = np.tile([0.9, 0.9, 0.1, 0.1], 2)
    cells = cells_frame(
        [("fits", prompt, "en", 4, safe) for prompt, safe in zip(range(4), [4, 3, 0, 1])]
        + [("reversed", prompt, "en", 4, safe) for prompt, safe in zip(range(4), [0, 0, 4, 4])]
    )

    table = person_fit(cell_residuals(cells, probability)).set_index("configuration")

    assert table.loc["reversed", "lz"] < -3
    assert table.loc["fits", "lz"] > -1
    assert table.loc["reversed", "misfit"] == "underfit"


# Test information


def test_information_of_one_binary_item_at_its_location():
    parameters = parameters_frame([
        ("theta", "a", None, None, 0.0),
        ("beta", None, 1, None, 0.5),
        ("alpha", None, 1, None, 2.0),
        ("gamma", None, None, "th", 1.0),
        ("tau", None, 1, "th", -0.25),
    ])

    curves = information_curves(parameters, [0.5, 1.25], ["en", "th"]).set_index(["language", "ability"])

    # a^2 P (1 - P) with P = 1/2 where the robustness equals the location.
    assert curves.loc[("en", 0.5), "information"] == pytest.approx(1.0)
    assert curves.loc[("th", 1.25), "information"] == pytest.approx(1.0)
    assert curves.loc[("th", 0.5), "information"] == pytest.approx(4 * expit(-1.5) * expit(1.5))
    assert curves.loc[("en", 0.5), "standard_error"] == pytest.approx(1.0)


def test_graded_information_matches_numerical_fisher_information():
    steps = {"step_2": 0.7, "step_3": 0.4, "step_5": 0.9}
    parameters = parameters_frame(
        [("theta", "a", None, None, 0.0), ("beta", None, 1, None, 0.2), ("alpha", None, 1, None, 1.5)]
        + [(name, None, 1, None, value) for name, value in steps.items()]
    )
    offsets = np.array([-(0.7 + 0.4), -0.4, 0.0, 0.9])

    def category_probabilities(ability):
        at_least = expit(1.5 * (ability - 0.2 - offsets))
        bounds = np.r_[1.0, at_least, 0.0]
        return bounds[:-1] - bounds[1:]

    grid = np.array([-1.0, 0.0, 0.6, 2.0])
    curves = information_curves(parameters, grid, ["en"])

    step = 1e-5
    for ability, information in zip(grid, curves["information"]):
        slope = (category_probabilities(ability + step) - category_probabilities(ability - step)) / (2 * step)
        assert information == pytest.approx(np.sum(slope**2 / category_probabilities(ability)), rel=1e-5)


def test_information_of_unidimensional_items_per_language():
    parameters = parameters_frame([
        ("theta", "a", None, None, 0.0),
        ("beta", None, 1, "en", 0.0),
        ("beta", None, 2, "en", 0.0),
        ("beta", None, 1, "th", 1.0),
    ])

    curves = information_curves(parameters, [0.0], ["en", "th"]).set_index("language")

    assert curves.loc["en", "information"] == pytest.approx(0.5)
    assert curves.loc["en", "items"] == 2
    assert curves.loc["th", "information"] == pytest.approx(expit(1.0) * expit(-1.0))


def test_ability_grid_rejects_empty_range():
    with pytest.raises(ValueError, match="low < high"):
        ability_grid(1.0, 1.0, 10)


# Fragment and figures


def test_fragment_reports_anchors_and_fit():
    text = render_fragment(
        "refusal",
        pd.DataFrame({"jsr": [0.1], "ability": [2.0]}),
        pd.DataFrame({"resource": ["low"], "mean_entropy": [0.4]}),
        pd.DataFrame({"criterion": ["jsr"], "assessed": [2], "english_worse": [0], "configurations": [np.nan]}),
        pd.DataFrame({"language": ["bn"], "mean_abs_tau": [0.9]}),
        pd.DataFrame({"statistic": ["first_factor_share", "kendall_w"], "value": [0.8, 0.5]}),
        pd.DataFrame({"model": ["intercept"], "fold": ["all"], "log_loss": [0.25], "auc": [0.5]}),
        anchors=pd.DataFrame({"id": [3, 7]}),
        dif=pd.DataFrame({"lord_flagged": [True, False, False], "mh_flagged": [True, True, False],
                          "agreement": [True, False, np.nan]}),
        model_comparison=pd.DataFrame({"model": ["1pl", "multigroup-2pl", "grm"],
                                       "response": [BINARY, BINARY, GRADED],
                                       "aic": [50.0, 40.0, 10.0], "bic": [45.0, 48.0, 12.0]}),
        item_fit=pd.DataFrame({"id": [1, 2], "misfit": ["underfit", np.nan]}),
        person_fit=pd.DataFrame({"configuration": ["a"], "misfit": [np.nan], "lz": [-0.5]}),
        information=pd.DataFrame({"language": ["en", "en", "bn"], "information": [2.0, 3.0, 1.0]}),
    )

    assert "anchor prompts selected: 2 (3, 7)" in text
    assert "Lord's chi-square: 1 of 3; in Mantel-Haenszel class B or C: 2" in text
    assert "agree on 0.500 of 2 pairs" in text
    assert "by AIC: multigroup-2pl; by BIC: 1pl" in text
    assert "outside 0.7..1.3: 1 of 2; configurations: 0 of 1 (lowest lz -0.500)" in text
    assert "lowest first: `bn` 1.00, `en` 3.00" in text
    assert text.endswith("\n")


def test_fit_figures_write_png(tmp_path):
    items = pd.DataFrame({"id": [1, 2], "infit": [1.0, 1.6], "outfit": [0.9, 1.7], "misfit": ["", "underfit"]})
    persons = pd.DataFrame({"configuration": ["a"], "infit": [1.0], "outfit": [1.0], "misfit": [""]})
    comparison = model_comparison({"1pl": summary(5, -20.0, 50.0, 60.0), "grm": summary(9, -30.0, 78.0, 90.0)},
                                  {})
    curves = information_curves(parameters_frame([("beta", None, 1, None, 0.0)]), ability_grid(), ["en", "th"])

    figures.fit_scatter(items, persons, (0.7, 1.3), tmp_path / "fit.png")
    figures.fit_scatter(items.iloc[0:0], persons.iloc[0:0], (0.7, 1.3), tmp_path / "fit_empty.png")
    figures.model_comparison_bars(comparison, tmp_path / "comparison.png")
    figures.information_plot(curves, tmp_path / "information.png")
    figures.information_plot(curves.iloc[0:0], tmp_path / "information_empty.png")

    for name in ("fit", "fit_empty", "comparison", "information", "information_empty"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0, name
