"""Classical single-language IRT fits with girth, for comparison with our estimators.

girth (0.8.0) takes an integer array of items x respondents. A missing
response is the value `girth.INVALID_RESPONSE` (-99999): girth's MML
estimators skip it in their likelihoods, because there is no integer NaN.
Responses are 1 for y = 1 (here: safe) and 0 otherwise, and girth's
difficulty b enters as P(y = 1) = sigmoid(a * (theta - b)), the orientation
of our beta.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING = -99999  # girth.INVALID_RESPONSE, repeated so that importing this module does not import girth.


@dataclass
class GirthData:
    """A response matrix in girth's layout, with the labels of its axes."""

    responses: np.ndarray
    items: list
    respondents: list


def to_girth(matrix: pd.DataFrame) -> GirthData:
    """Convert a respondents x items matrix of 0, 1 and NaN (missing) to girth's items x respondents array."""
    values = matrix.to_numpy(dtype=float)
    present = ~np.isnan(values)
    bad = present & ~np.isin(values, (0.0, 1.0))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"responses must be 0, 1 or missing; got {float(values[row, column])} for respondent "
                         f"{matrix.index[row]}, item {matrix.columns[column]}")

    responses = np.where(present, values, MISSING).astype(np.int64).T
    return GirthData(responses=responses, items=list(matrix.columns), respondents=list(matrix.index))


def response_matrix(cells: pd.DataFrame) -> pd.DataFrame:
    """Pivot cells with at most one valid pass each to configurations x prompt ids of 0, 1 and NaN.

    Only single-language cells are accepted, because a classical fit has no
    language terms; cells without a valid pass become missing.
    """
    languages = cells["language"].unique()
    if len(languages) != 1:
        raise ValueError(f"a girth comparison needs cells of one language, got {sorted(languages)}")
    several = cells.index[cells["n_valid"] > 1]
    if len(several):
        raise ValueError(f"a girth response is one pass, but rows {list(several[:5])} have several valid passes")

    answered = cells[cells["n_valid"] == 1]
    matrix = answered.pivot(index="configuration", columns="id", values="n_safe").astype(float)
    matrix.columns.name = None
    return matrix


def fit_girth(matrix: pd.DataFrame, model: str = "2pl") -> pd.DataFrame:
    """Fit girth's MML 1PL (Rasch, a = 1) or 2PL to a response matrix; return difficulty and discrimination by item."""
    from girth import rasch_mml, twopl_mml

    data = to_girth(matrix)
    if model == "1pl":
        result = rasch_mml(data.responses)
        discrimination = np.ones(len(data.items))
    elif model == "2pl":
        result = twopl_mml(data.responses)
        discrimination = np.asarray(result["Discrimination"], dtype=float)
    else:
        raise ValueError(f"girth comparison model must be '1pl' or '2pl', got {model!r}")
    return pd.DataFrame({"item": data.items, "difficulty": np.asarray(result["Difficulty"], dtype=float),
                         "discrimination": discrimination})
