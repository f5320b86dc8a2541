"""Item response models of safety across languages, fitted by MAP with Laplace uncertainty.

`fit(cells, FitOptions(model=...))` fits one of MODELS to cells of k safe
out of n valid passes per (configuration, prompt, language). models.py
states each model's equation and priors; estimate.py the fit and its summary.
"""

from xlsafety.irt.estimate import FitOptions, FitResult, fit
from xlsafety.irt.models import MODELS, SCORE_COLUMNS

__all__ = ["FitOptions", "FitResult", "fit", "MODELS", "SCORE_COLUMNS"]
