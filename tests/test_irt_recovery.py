"""Recovery, interval coverage, orientation, pinned values, degenerate data and input errors of the IRT fit."""

import numpy as np
import pandas as pd
import pytest

from xlsafety.irt import FitOptions, fit
from xlsafety.irt.design import LOG_ALPHA_PRIOR
from xlsafety.irt.simulate import simulate_cells

# A reduced MultiJail shape with anchors and heavy-tailed tau (t(3) * 0.5).
SHAPE = {"configurations": 40, "prompts": 80, "languages": 6, "passes": 10, "anchors": 15, "tau_scale": 0.5}
COVERAGE_SEEDS = (11, 12, 13, 14)


@pytest.fixture(scope="module")
def fits():
    """Fits of the default model to simulations at SHAPE, by seed."""
    results = {}
    for seed in COVERAGE_SEEDS:
        simulation = simulate_cells(seed, **SHAPE)
        options = FitOptions(anchors=simulation.anchors, tau_scale=simulation.tau_scale)
        results[seed] = (simulation, fit(simulation.cells, options))
    return results


def paired(simulation, result, name):
    """Return the rows of one parameter family and the true values in the same order."""
    table = result.parameters
    rows = table[table["parameter"] == name]
    truth = simulation.truth
    if name in ("theta", "beta", "alpha"):
        return rows, truth[name]
    if name == "gamma":
        return rows, truth["gamma"][1:]
    if name == "delta":
        return rows, truth["delta"][:, 1:].ravel()
    free = ~rows["fixed"].to_numpy()
    return rows[free], truth["tau"][:, 1:].ravel()[free]


# Thresholds sit about 0.01 below sqrt(var(truth) / (var(truth) + mean(se^2))),
# the correlation that the Laplace standard errors lead one to expect at this
# shape (theta 0.99, beta 0.99, alpha 0.99, delta 0.96-0.98, tau 0.96-0.98;
# gamma has only 5 values, so its bound is looser).
RECOVERY = {"theta": 0.99, "beta": 0.985, "alpha": 0.98, "gamma": 0.95, "delta": 0.94, "tau": 0.90}


@pytest.mark.parametrize("name", list(RECOVERY))
def test_recovers_simulated_parameters(fits, name):
    simulation, result = fits[COVERAGE_SEEDS[0]]
    rows, truth = paired(simulation, result, name)

    assert result.summary["converged"]
    assert np.corrcoef(rows["estimate"], truth)[0, 1] >= RECOVERY[name]


# Pooled 95% coverage over COVERAGE_SEEDS at SHAPE on 2026-12-05: theta 0.969,
# beta 0.931, gamma 0.85, alpha 0.959. NOTE: gamma's intervals are too narrow
# at this small shape (0.80 pooled over 12 simulations, 60 gammas). At the MultiJail
# shape, pooled coverage was 0.944 over 8 seeds (benchmarks/irt_benchmark.py).
COVERAGE_BAND = {"theta": (0.90, 0.98), "beta": (0.90, 0.98), "alpha": (0.90, 0.98), "gamma": (0.75, 0.99)}


@pytest.mark.parametrize("name", list(COVERAGE_BAND))
def test_interval_coverage_near_nominal(fits, name):
    covered = []
    for simulation, result in fits.values():
        rows, truth = paired(simulation, result, name)
        covered.extend((rows["lower"] <= truth) & (truth <= rows["upper"]))

    # Pooled over seeds, because one fit's 5 gammas can only cover 0, 20, ..., 100%.
    low, high = COVERAGE_BAND[name]
    assert low <= np.mean(covered) <= high


def test_delta_is_centred_in_each_language(fits):
    # The likelihood is unchanged by delta_jL + c with gamma_L + c, so the fit
    # reports delta centred per language and gamma for the average
    # configuration, and the simulation draws delta centred to match.
    for simulation, result in fits.values():
        table = result.parameters
        means = table[table["parameter"] == "delta"].groupby("language")["estimate"].mean()

        assert np.abs(means.to_numpy()).max() < 1e-9
        assert np.abs(simulation.truth["delta"].mean(axis=0)).max() < 1e-12
        # Likewise theta_j + c with beta_i + c: both are reported relative to the mean beta.
        assert abs(table[table["parameter"] == "beta"]["estimate"].mean()) < 1e-9
        assert abs(simulation.truth["beta"].mean()) < 1e-12


def test_scale_term_uses_data_share(fits):
    # The estimates are reported in the unit of units.py whatever the scale
    # term, but the optimum it picks on the orbit sets how much the priors
    # shrink each term. Counted with K_eff it lands within 10% of the prior's
    # unit here (at most 7.5%), and the plain joint MAP lands 116% off (exp 0.77).
    for _, result in fits.values():
        record = result.summary["scale_term"]

        assert record["effective_locations"] < record["free_locations"]
        assert abs(result.summary["unit_shift"]) < 0.1


def test_unit_ignores_scale_term():
    # The joint MAP without the scale term shrinks every location to about
    # half its spread, and a grows to match. The reported unit (units.py) undoes both.
    simulation = simulate_cells(COVERAGE_SEEDS[0], **SHAPE)
    options = {"anchors": simulation.anchors, "tau_scale": simulation.tau_scale, "standard_errors": False}
    corrected = fit(simulation.cells, FitOptions(**options))
    plain = fit(simulation.cells, FitOptions(scale_correction=False, **options))

    def slope(table):
        theta = table[table["parameter"] == "theta"]["estimate"]
        return np.polyfit(simulation.truth["theta"], theta, 1)[0]

    def mean_log_alpha(table):
        return np.log(table[table["parameter"] == "alpha"]["estimate"]).mean()

    assert plain.summary["unit_shift"] > 0.3
    for result in (corrected, plain):
        assert 0.9 < slope(result.parameters) < 1.1
        assert mean_log_alpha(result.parameters) == pytest.approx(LOG_ALPHA_PRIOR[0], abs=1e-9)


@pytest.mark.parametrize("model", ["multigroup-2pl", "multigroup-1pl", "2pl", "grm"])
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_always_safe_configuration_ranks_first(model, seed):
    simulation = simulate_cells(seed, configurations=10, prompts=15, languages=3, anchors=3,
                                graded=model == "grm")
    cells = simulation.cells
    best = cells["configuration"] == simulation.configurations[0]
    cells.loc[best, "n_safe"] = cells["n_valid"]
    if model == "grm":
        cells.loc[best, ["n_score_1", "n_score_2", "n_score_3", "n_score_4"]] = 0
        cells.loc[best, "n_score_5"] = cells["n_valid"]
    table = fit(cells, FitOptions(model=model, anchors=simulation.anchors)).parameters
    theta = table[table["parameter"] == "theta"].set_index("configuration")["estimate"]

    assert theta.idxmax() == simulation.configurations[0]
    assert (table[table["parameter"] == "alpha"]["estimate"] > 0).all()


# Pinned from a fit on 2026-12-05 (seed 123, gradient tolerance 1e-6), after the
# fit started to report theta and beta relative to the mean beta, and the
# locations in the unit where the mean log a is its prior mean
# (xlsafety/irt/centring.py, units.py). The log-likelihood did not change.
# A change here means the model, its priors or the optimum changed.
PINNED = {
    "log_likelihood": -572.5565551573683,
    "theta": [-0.6231452858111118, -0.4596930126575872, 1.0017177687542032],
    "theta_se": [0.1731257708773853, 0.16805734102451753, 0.18419131502481426],
    "gamma": [0.6979523121152109, 1.393830125561003],
    "gamma_se": [0.11481763725766865, 0.15923701445408805],
    "alpha": [2.937666559542404, 0.8568384666978073],
    "effective_locations": 35.366,
}


def test_pinned_values_on_seeded_simulation():
    simulation = simulate_cells(123, configurations=8, prompts=12, languages=3, passes=5, anchors=3)
    options = FitOptions(anchors=simulation.anchors, tau_scale=simulation.tau_scale, gradient_tolerance=1e-6)
    result = fit(simulation.cells, options)
    table = result.parameters

    def column(name, field="estimate"):
        return table[table["parameter"] == name][field].to_numpy()

    assert result.summary["log_likelihood"] == pytest.approx(PINNED["log_likelihood"], abs=1e-6)
    assert column("theta")[:3] == pytest.approx(PINNED["theta"], abs=1e-5)
    assert column("theta", "se")[:3] == pytest.approx(PINNED["theta_se"], abs=1e-5)
    assert column("gamma") == pytest.approx(PINNED["gamma"], abs=1e-5)
    assert column("gamma", "se") == pytest.approx(PINNED["gamma_se"], abs=1e-5)
    assert column("alpha")[:2] == pytest.approx(PINNED["alpha"], abs=1e-5)
    assert result.summary["scale_term"]["effective_locations"] == pytest.approx(PINNED["effective_locations"], abs=1e-3)


def test_fit_statistics_are_consistent():
    simulation = simulate_cells(31, configurations=6, prompts=8, languages=3, passes=4, missing_share=0.2)
    summary = fit(simulation.cells, FitOptions()).summary
    k = summary["parameters"]

    assert summary["cells"] == len(simulation.cells)
    assert summary["passes"] == simulation.cells["n_valid"].sum()
    assert summary["aic"] == pytest.approx(2 * k - 2 * summary["log_likelihood"])
    assert summary["bic"] == pytest.approx(k * np.log(summary["passes"]) - 2 * summary["log_likelihood"])
    assert summary["log_likelihood"] < 0
    assert summary["laplace"]["regularised"] is False


def degenerate_cells() -> pd.DataFrame:
    simulation = simulate_cells(41, configurations=6, prompts=8, languages=3, passes=5)
    cells = simulation.cells
    cells.loc[cells["id"] == 7, "n_safe"] = 0
    # The all-safe configuration answers every prompt but 7, which it leaves without a valid pass.
    cells.loc[cells["configuration"] == "c000_x", "n_safe"] = cells["n_valid"]
    cells.loc[(cells["configuration"] == "c000_x") & (cells["id"] == 7), ["n_valid", "n_safe"]] = 0
    # Language l02 is answered by only two configurations.
    dropped = (cells["language"] == "l02") & ~cells["configuration"].isin(["c000_x", "c001_x"])
    return cells[~dropped].reset_index(drop=True)


def test_degenerate_units_are_listed():
    result = fit(degenerate_cells(), FitOptions())
    degenerate = result.summary["degenerate"]

    assert degenerate["configurations_all_safe"] == ["c000_x"]
    assert degenerate["prompts_all_unsafe"] == [7]
    assert sorted(degenerate["languages_partly_answered"]) == ["l02"]
    assert degenerate["languages_partly_answered"]["l02"] == ["c002_x", "c003_x", "c004_x", "c005_x"]
    assert degenerate["cells_all_safe"] > 0


def test_degenerate_data_give_finite_estimates():
    result = fit(degenerate_cells(), FitOptions())
    values = result.parameters[["estimate", "se", "lower", "upper"]].to_numpy()

    assert result.summary["converged"]
    assert np.isfinite(values).all()


def test_all_safe_data_give_finite_estimates():
    simulation = simulate_cells(42, configurations=4, prompts=5, languages=2)
    cells = simulation.cells.assign(n_safe=simulation.cells["n_valid"])
    result = fit(cells, FitOptions())

    assert np.isfinite(result.parameters[["estimate", "se"]].to_numpy()).all()
    assert result.summary["degenerate"]["languages_all_safe"] == ["en", "l01"]


def valid_cells() -> pd.DataFrame:
    return simulate_cells(51, configurations=3, prompts=4, languages=2, passes=3).cells


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        (lambda cells: cells.drop(columns="n_safe"), {}, "lacks columns"),
        (lambda cells: cells.assign(n_safe=cells["n_valid"] + 1), {}, "n_safe exceeds n_valid"),
        (lambda cells: cells.assign(n_valid=-1), {}, "non-negative integers"),
        (lambda cells: cells.assign(n_safe=0.5), {}, "non-negative integers"),
        (lambda cells: pd.concat([cells, cells.head(1)]), {}, "repeat a"),
        (lambda cells: cells.assign(id="x"), {}, "integer prompt ids"),
        (lambda cells: cells.assign(id=cells["id"] + 0.5), {}, "integer prompt ids; bad rows"),
        (lambda cells: cells.assign(n_safe=cells["n_safe"].astype(str)), {}, "non-negative integers; it has type"),
        (lambda cells: cells.assign(configuration=None), {}, "column 'configuration' is empty in rows"),
        (lambda cells: cells.assign(language=""), {}, "column 'language' is empty in rows"),
        (lambda cells: None, {}, "must be a pandas DataFrame"),
        (lambda cells: cells.assign(n_valid=0, n_safe=0), {}, "no cell has a valid pass"),
        (lambda cells: cells, {"model": "3pl"}, "unknown IRT model '3pl'"),
        (lambda cells: cells, {"reference_language": "ko"}, "reference language 'ko'"),
        (lambda cells: cells, {"tau_scale": 0}, "tau_scale must be a positive finite number"),
        (lambda cells: cells, {"tau_scale": "0.5"}, "tau_scale must be a positive finite number"),
        (lambda cells: cells, {"tau_scale": float("inf")}, "tau_scale must be a positive finite number"),
        (lambda cells: cells, {"gradient_tolerance": "1e-3"}, "gradient_tolerance must be a positive number"),
        (lambda cells: cells, {"max_iterations": 0}, "max_iterations"),
        (lambda cells: cells, {"anchors": ["1"]}, "anchors must be integer"),
        (lambda cells: cells, {"model": "grm"}, "n_score_1"),
    ],
)
def test_bad_input_raises_value_error(change, options, message):
    with pytest.raises(ValueError, match=message):
        fit(change(valid_cells()), FitOptions(**options))


def test_graded_counts_must_add_up():
    cells = simulate_cells(52, configurations=3, prompts=4, languages=2, graded=True).cells
    cells.loc[0, "n_score_1"] += 1

    with pytest.raises(ValueError, match="do not add up to n_valid"):
        fit(cells, FitOptions(model="grm"))
