import logging

import numpy as np
import pandas as pd
import pytest

from xlsafety.irt import FitOptions, fit


def simulate(seed, n_configurations=24, n_prompts=40, languages=("en", "zh", "th", "sw"), passes=10,
             missing_share=0.0, anchors=()):
    """Simulate binomial cells from the multi-group 2PL with known parameters."""
    rng = np.random.default_rng(seed)
    truth = {
        "theta": rng.normal(0, 1, n_configurations),
        "beta": rng.normal(0, 1, n_prompts),
        "alpha": rng.lognormal(0.5, 0.3, n_prompts),
        "gamma": np.r_[0.0, rng.normal(0.5, 0.5, len(languages) - 1)],
        "delta": np.c_[np.zeros(n_configurations), rng.normal(0, 0.3, (n_configurations, len(languages) - 1))],
        "tau": np.c_[np.zeros(n_prompts), 0.3 * rng.standard_t(3, (n_prompts, len(languages) - 1))],
    }
    truth["tau"][list(anchors), :] = 0.0

    rows = []
    for j in range(n_configurations):
        for i in range(n_prompts):
            for column, language in enumerate(languages):
                if rng.random() < missing_share:
                    continue
                logit = truth["alpha"][i] * (
                    truth["theta"][j] + truth["delta"][j, column]
                    - truth["beta"][i] - truth["gamma"][column] - truth["tau"][i, column]
                )
                safe = rng.binomial(passes, 1 / (1 + np.exp(-logit)))
                rows.append((f"c{j:02d}_x", i, language, passes, passes, safe))
    cells = pd.DataFrame(rows, columns=["configuration", "id", "language", "n_passes", "n_valid", "n_safe"])
    return cells, truth


def estimates(result, name, key):
    table = result.parameters[result.parameters["parameter"] == name]
    return table.sort_values(key)["estimate"].to_numpy()


def test_recovers_simulated_parameters():
    cells, truth = simulate(seed=1)
    result = fit(cells, FitOptions())

    assert result.summary["converged"]
    assert np.corrcoef(estimates(result, "theta", "configuration"), truth["theta"])[0, 1] > 0.95
    assert np.corrcoef(estimates(result, "beta", "id"), truth["beta"])[0, 1] > 0.95
    assert np.corrcoef(estimates(result, "gamma", "language"), truth["gamma"][[3, 2, 1]])[0, 1] > 0.9


def test_recovers_with_missing_cells():
    cells, truth = simulate(seed=2, missing_share=0.1)
    result = fit(cells, FitOptions())

    assert result.summary["cells"] == len(cells)
    assert np.corrcoef(estimates(result, "theta", "configuration"), truth["theta"])[0, 1] > 0.95


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_always_safe_configuration_ranks_first(seed):
    cells, _ = simulate(seed=seed, n_configurations=10, n_prompts=20)
    cells.loc[cells["configuration"] == "c00_x", "n_safe"] = cells["n_valid"]
    result = fit(cells, FitOptions())
    theta = result.parameters[result.parameters["parameter"] == "theta"].set_index("configuration")["estimate"]

    assert theta.idxmax() == "c00_x"
    assert (estimates(result, "alpha", "id") > 0).all()


def test_reference_and_anchors_fixed():
    cells, _ = simulate(seed=6, n_configurations=8, n_prompts=12, anchors=(0, 1))
    result = fit(cells, FitOptions(anchors=[0, 1]))
    table = result.parameters

    assert set(table.loc[table["parameter"] == "gamma", "language"]) == {"zh", "th", "sw"}
    assert "en" not in set(table.loc[table["parameter"].isin(["delta", "tau"]), "language"])
    anchored = table[(table["parameter"] == "tau") & table["id"].isin([0, 1])]
    assert anchored["fixed"].all()
    assert (anchored["estimate"] == 0).all()


def test_all_unsafe_data_gives_finite_estimates():
    cells, _ = simulate(seed=7, n_configurations=4, n_prompts=6)
    cells["n_safe"] = 0
    result = fit(cells, FitOptions())

    assert np.isfinite(result.parameters["estimate"]).all()


def test_same_data_same_estimates():
    cells, _ = simulate(seed=8, n_configurations=6, n_prompts=10)

    first = fit(cells, FitOptions()).parameters["estimate"].to_numpy()
    second = fit(cells, FitOptions()).parameters["estimate"].to_numpy()

    assert np.array_equal(first, second)


def test_pinned_values_on_small_data():
    cells = pd.DataFrame(
        {
            "configuration": ["a_x", "a_x", "b_x", "b_x"],
            "id": [0, 0, 0, 0],
            "language": ["en", "th", "en", "th"],
            "n_passes": [4, 4, 4, 4],
            "n_valid": [4, 4, 4, 4],
            "n_safe": [4, 1, 2, 0],
        }
    )
    result = fit(cells, FitOptions(gradient_tolerance=1e-7, scale_correction=False))
    theta = result.parameters[result.parameters["parameter"] == "theta"]["estimate"].to_numpy()

    assert theta == pytest.approx(PINNED_THETA, abs=1e-6)


PINNED_THETA = [1.2849330351930424, -0.039160165516015706]


def test_one_pl_fixes_discrimination():
    cells, _ = simulate(seed=9, n_configurations=5, n_prompts=8)
    result = fit(cells, FitOptions(model="multigroup-1pl"))

    assert (estimates(result, "alpha", "id") == 1.0).all()


def test_unconverged_fit_warns(caplog):
    cells, _ = simulate(seed=10, n_configurations=5, n_prompts=8)

    with caplog.at_level(logging.WARNING):
        result = fit(cells, FitOptions(max_iterations=2))

    assert not result.summary["converged"]
    assert "without converging" in caplog.text


def test_missing_reference_language_rejected():
    cells, _ = simulate(seed=11, n_configurations=3, n_prompts=4)

    with pytest.raises(ValueError, match="reference language 'ko'"):
        fit(cells, FitOptions(reference_language="ko"))


def test_large_fit_keeps_freed_memory(monkeypatch):
    from xlsafety.irt import estimate

    cells, _ = simulate(seed=4, n_configurations=4, n_prompts=6)
    calls = []
    monkeypatch.setattr(estimate, "_keep_freed_memory", lambda: calls.append(True))
    fit(cells, FitOptions(standard_errors=False))
    assert not calls

    monkeypatch.setattr(estimate, "MULTI_THREAD_CELLS", len(cells))
    fit(cells, FitOptions(standard_errors=False))
    assert calls == [True]


def test_converged_fit_reports_plain_message():
    cells, _ = simulate(seed=5, n_configurations=4, n_prompts=6)

    summary = fit(cells, FitOptions(standard_errors=False)).summary

    assert summary["converged"]
    assert summary["optimizer_message"] == "max |gradient| reached the tolerance"
