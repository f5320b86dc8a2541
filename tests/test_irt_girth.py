"""The girth adapter and agreement of our unidimensional models with girth's MML fits."""

import numpy as np
import pandas as pd
import pytest

from xlsafety.irt import FitOptions, fit
from xlsafety.irt.girth_adapter import MISSING, fit_girth, response_matrix, to_girth


def test_missing_tag_is_girths():
    from girth import INVALID_RESPONSE

    assert MISSING == INVALID_RESPONSE


def test_to_girth_transposes_and_tags_missing():
    matrix = pd.DataFrame([[1, 0, np.nan], [0, np.nan, 1]], index=["a_x", "b_x"], columns=[10, 11, 12])
    data = to_girth(matrix)

    assert data.responses.shape == (3, 2)
    assert data.responses.dtype == np.int64
    assert data.responses.tolist() == [[1, 0], [0, MISSING], [MISSING, 1]]
    assert data.items == [10, 11, 12]
    assert data.respondents == ["a_x", "b_x"]


def test_to_girth_rejects_non_binary_values():
    matrix = pd.DataFrame([[1, 0.5]], index=["a_x"], columns=[1, 2])

    with pytest.raises(ValueError, match="must be 0, 1 or missing; got 0.5"):
        to_girth(matrix)


def test_response_matrix_rejects_several_languages_or_passes():
    cells = pd.DataFrame({"configuration": ["a_x", "a_x"], "id": [1, 1], "language": ["en", "th"],
                          "n_valid": [1, 1], "n_safe": [1, 0]})

    with pytest.raises(ValueError, match="one language"):
        response_matrix(cells)
    with pytest.raises(ValueError, match="several valid passes"):
        response_matrix(cells.iloc[:1].assign(n_valid=2))


def single_language_cells(seed: int, respondents: int = 300, items: int = 40, missing_share: float = 0.1):
    """One pass per (configuration, prompt) in one language from a 2PL, with a share of missing cells."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, respondents)
    beta = rng.normal(0, 1, items)
    alpha = rng.lognormal(0.3, 0.3, items)
    j, i = (axis.ravel() for axis in np.meshgrid(np.arange(respondents), np.arange(items), indexing="ij"))
    safe = rng.random(j.size) < 1 / (1 + np.exp(-alpha[i] * (theta[j] - beta[i])))
    cells = pd.DataFrame({"configuration": [f"c{value:03d}_x" for value in j], "id": i, "language": "en",
                          "n_valid": 1, "n_safe": safe.astype(int)})
    missing = rng.random(len(cells)) < missing_share
    cells.loc[missing, ["n_valid", "n_safe"]] = 0
    return cells


@pytest.mark.parametrize("model", ["1pl", "2pl"])
def test_difficulties_agree_with_girth(model):
    cells = single_language_cells(seed=3)
    girth = fit_girth(response_matrix(cells), model)
    table = fit(cells, FitOptions(model=model)).parameters
    ours = table[table["parameter"] == "beta"].sort_values("id")

    assert (cells["n_valid"] == 0).mean() == pytest.approx(0.1, abs=0.01)
    assert ours["id"].tolist() == girth["item"].tolist()
    assert np.corrcoef(ours["estimate"], girth["difficulty"])[0, 1] >= 0.98


def test_discriminations_agree_with_girth():
    cells = single_language_cells(seed=4)
    girth = fit_girth(response_matrix(cells), "2pl")
    table = fit(cells, FitOptions(model="2pl")).parameters
    ours = table[table["parameter"] == "alpha"].sort_values("id")

    assert np.corrcoef(ours["estimate"], girth["discrimination"])[0, 1] >= 0.9
