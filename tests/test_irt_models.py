"""Each IRT model fits, and the closed-form derivatives match automatic differentiation."""

import numpy as np
import pytest
import torch

from xlsafety.irt import MODELS, FitOptions, fit
from xlsafety.irt import hessian as hessian_module
from xlsafety.irt.centring import centre_estimates, centre_variances, language_groups, prompt_groups
from xlsafety.irt.design import LOG_ALPHA_PRIOR, build_design, validate_cells
from xlsafety.irt.hessian import StructuredHessian
from xlsafety.irt.models import model_spec
from xlsafety.irt.objective import Objective
from xlsafety.irt.optimize import minimise
from xlsafety.irt.scale import refine_scale
from xlsafety.irt.simulate import simulate_cells
from xlsafety.irt.units import free_log_alpha, rescale_estimates, rescale_variances, unit_shift


def small_objective(model: str, missing_share: float = 0.1, drop_pair: bool = False) -> Objective:
    spec = model_spec(model)
    simulation = simulate_cells(0, configurations=5, prompts=6, languages=3, passes=4, anchors=2,
                                graded=spec.graded, missing_share=missing_share)
    cells = simulation.cells
    if drop_pair:
        # Prompt 3 in l01 has no cell, so its tau depends on the prior alone.
        cells = cells[(cells["id"] != 3) | (cells["language"] != "l01")]
    cells = validate_cells(cells, spec.graded)
    return Objective(build_design(cells, spec, "en", simulation.anchors, tau_scale=0.5))


def autograd_loss(objective: Objective, free: torch.Tensor) -> torch.Tensor:
    """The negative log posterior through torch operations only, for automatic differentiation."""
    design = objective.design
    full = torch.zeros(design.size, dtype=torch.float64).index_put((design.free_positions,), free)
    eta, _, _, _ = objective.predictors(full[design.local_index], with_jacobian=False)
    nll = design.response.derivatives(eta, order=1)[0].sum()
    z = (free - design.prior_location) / design.prior_scale
    prior = torch.where(design.cauchy, torch.log1p(z**2), 0.5 * z**2).sum()
    return nll + prior + (design.scale_weight * free).sum()


def perturbed_start(objective: Objective) -> torch.Tensor:
    noise = torch.randn(objective.design.free_count, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return objective.design.initial + 0.3 * noise


@pytest.mark.parametrize("model", list(MODELS))
def test_gradient_matches_autograd(model):
    objective = small_objective(model)
    free = perturbed_start(objective)

    value, gradient = objective.value_and_gradient(free)
    expected = torch.func.grad(lambda x: autograd_loss(objective, x))(free)

    assert value == pytest.approx(autograd_loss(objective, free).item(), rel=1e-12)
    assert torch.allclose(gradient, expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(("model", "drop_pair"), [(model, False) for model in MODELS] + [("multigroup-2pl", True)])
def test_hessian_factor_matches_autograd(model, drop_pair, monkeypatch):
    # Small chunks, so that the chunked assembly and updates run several times.
    monkeypatch.setattr(hessian_module, "CELL_CHUNK", 7)
    monkeypatch.setattr(hessian_module, "PAIR_CHUNK", 4)
    objective = small_objective(model, drop_pair=drop_pair)
    free, _, _ = minimise(objective, objective.design.initial, 500, 1e-9)
    expected = torch.func.hessian(lambda x: autograd_loss(objective, x))(free)
    hessian = StructuredHessian(objective, free, exact=True)
    probes = torch.randn(5, free.numel(), generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    for probe in probes:
        whitened = hessian.whiten(probe)
        # H = M M', so |M' x|^2 = x' H x, and M^-1 g . M' x = g . x.
        assert (whitened @ whitened).item() == pytest.approx((probe @ expected @ probe).item(), rel=1e-9)
        assert torch.allclose(hessian.unwhiten(whitened), probe, atol=1e-9)
        assert (hessian.whiten_gradient(probe) @ whitened).item() == pytest.approx((probe @ probe).item(), rel=1e-9)
    assert not hessian.regularised
    assert torch.allclose(hessian.inverse_diagonal(), torch.linalg.inv(expected).diagonal(), rtol=1e-8)


@pytest.mark.parametrize("model", ["multigroup-2pl", "grm"])
def test_centred_language_terms_match_dense_covariance(model):
    # Configuration c000_x has no cell in l01: its delta there is shifted with the others but stays out of the mean.
    spec = model_spec(model)
    cells = simulate_cells(0, configurations=5, prompts=6, languages=3, passes=4, anchors=2, graded=spec.graded).cells
    cells = validate_cells(cells[(cells["configuration"] != "c000_x") | (cells["language"] != "l01")], spec.graded)
    objective = Objective(build_design(cells, spec, "en", [0, 1], tau_scale=0.5))
    design = objective.design
    assert [len(deltas) - len(with_cells) for deltas, with_cells, _ in language_groups(design)] == [1, 0]
    free, _, _ = minimise(objective, design.initial, 500, 1e-9)
    covariance = torch.linalg.inv(torch.func.hessian(lambda x: autograd_loss(objective, x))(free))
    hessian = StructuredHessian(objective, free, exact=True)

    variances = centre_variances(design, hessian, hessian.inverse_diagonal())
    centred = centre_estimates(design, free)

    for deltas, with_cells, gamma in language_groups(design):
        averaging = torch.zeros(design.free_count, dtype=torch.float64)
        averaging[with_cells] = 1 / len(with_cells)
        for position in [*deltas, gamma]:
            contrast = -averaging.clone()
            contrast[position] += 1
            assert variances[position].item() == pytest.approx((contrast @ covariance @ contrast).item(), rel=1e-8)
            assert centred[position].item() == pytest.approx((contrast @ free).item(), abs=1e-12)
        assert centred[with_cells].mean().item() == pytest.approx(0, abs=1e-12)

    shifted, betas = prompt_groups(design)
    averaging = torch.zeros(design.free_count, dtype=torch.float64)
    averaging[betas] = 1 / len(betas)
    for position in shifted:
        contrast = -averaging.clone()
        contrast[position] += 1
        assert variances[position].item() == pytest.approx((contrast @ covariance @ contrast).item(), rel=1e-8)
    assert centred[betas].mean().item() == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("model", ["2pl", "multigroup-2pl", "grm"])
def test_rescaled_variances_match_dense_covariance(model):
    objective = small_objective(model)
    design = objective.design
    free, _, _ = minimise(objective, design.initial, 500, 1e-9)
    covariance = torch.linalg.inv(torch.func.hessian(lambda x: autograd_loss(objective, x))(free))
    hessian = StructuredHessian(objective, free, exact=True)

    def reported(x):
        return rescale_estimates(design, centre_estimates(design, x))

    # The delta method by central differences, which checks the closed form of units.py.
    step = 1e-6
    jacobian = torch.stack([(reported(free + step * unit) - reported(free - step * unit)) / (2 * step)
                            for unit in torch.eye(design.free_count, dtype=torch.float64)], dim=1)
    expected = (jacobian @ covariance @ jacobian.T).diagonal()
    variances = rescale_variances(design, hessian, free, centre_variances(design, hessian, hessian.inverse_diagonal()))

    assert torch.allclose(variances, expected, rtol=1e-5, atol=1e-10)
    assert reported(free)[free_log_alpha(design)].mean().item() == pytest.approx(LOG_ALPHA_PRIOR[0], abs=1e-12)
    assert abs(unit_shift(design, free)) > 1e-3
    assert objective.negative_log_likelihood(reported(free)) == pytest.approx(
        objective.negative_log_likelihood(free), rel=1e-12)


def test_centring_leaves_predictions_unchanged():
    objective = small_objective("multigroup-2pl")
    free, _, _ = minimise(objective, objective.design.initial, 500, 1e-9)
    centred = centre_estimates(objective.design, free)

    assert not torch.equal(centred, free)
    assert objective.negative_log_likelihood(centred) == pytest.approx(objective.negative_log_likelihood(free),
                                                                       rel=1e-12)


@pytest.mark.parametrize("model", list(MODELS))
def test_every_model_fits(model):
    spec = model_spec(model)
    simulation = simulate_cells(3, configurations=12, prompts=20, languages=3, anchors=4, graded=spec.graded)
    result = fit(simulation.cells, FitOptions(model=model, anchors=simulation.anchors))
    table = result.parameters
    theta = table[table["parameter"] == "theta"]["estimate"].to_numpy()

    assert result.summary["converged"]
    assert result.summary["model"] == model
    assert np.isfinite(table[["estimate", "se", "lower", "upper"]].to_numpy()).all()
    assert (table["lower"] <= table["estimate"]).all()
    assert (table["estimate"] <= table["upper"]).all()
    assert np.corrcoef(theta, simulation.truth["theta"])[0, 1] > 0.9


def test_unidimensional_items_are_prompt_language_pairs():
    simulation = simulate_cells(4, configurations=6, prompts=5, languages=3)
    table = fit(simulation.cells, FitOptions(model="2pl")).parameters
    beta = table[table["parameter"] == "beta"]

    assert set(table["parameter"]) == {"theta", "beta", "alpha"}
    assert len(beta) == 5 * 3
    assert beta["language"].notna().all()


def test_one_pl_alpha_is_fixed_at_one():
    simulation = simulate_cells(5, configurations=6, prompts=5, languages=3)
    table = fit(simulation.cells, FitOptions(model="1pl")).parameters
    alpha = table[table["parameter"] == "alpha"]

    assert (alpha["estimate"] == 1.0).all()
    assert alpha["fixed"].all()
    assert (alpha["se"] == 0).all()


def test_graded_model_shares_the_binary_scale():
    simulation = simulate_cells(6, configurations=20, prompts=30, languages=3, anchors=6, graded=True)
    options = {"anchors": simulation.anchors}
    graded = fit(simulation.cells, FitOptions(model="grm", **options)).parameters
    binary = fit(simulation.cells, FitOptions(model="multigroup-2pl", **options)).parameters

    for name in ("theta", "beta"):
        first = graded[graded["parameter"] == name]["estimate"].to_numpy()
        second = binary[binary["parameter"] == name]["estimate"].to_numpy()
        assert np.corrcoef(first, second)[0, 1] > 0.97
    steps = graded[graded["parameter"].str.startswith("step_")]
    assert (steps["estimate"] > 0).all()


@pytest.mark.parametrize("model", ["multigroup-2pl", "grm"])
def test_scale_refinement_matches_lbfgs(model):
    # Large enough that the scale term moves log a by a few percent. At the
    # tiny shape of small_objective it moves by 20% and the fit falls back to L-BFGS.
    spec = model_spec(model)
    simulation = simulate_cells(0, configurations=30, prompts=40, languages=3, passes=10, anchors=5,
                                graded=spec.graded)
    cells = validate_cells(simulation.cells, spec.graded)
    objective = Objective(build_design(cells, spec, "en", simulation.anchors, tau_scale=simulation.tau_scale))
    first, _, _ = minimise(objective, objective.design.initial, 500, 1e-9)
    refined, record = refine_scale(objective, first, 1e-3)
    # The same optimum of the K_eff scale term, found by L-BFGS from the first optimum.
    reference, _, _ = minimise(objective, first, 500, 1e-8)

    assert record["effective_locations"] < record["free_locations"]
    assert record["converged"]
    assert torch.allclose(refined, reference, atol=1e-3)
    assert not torch.allclose(first, reference, atol=1e-2)
