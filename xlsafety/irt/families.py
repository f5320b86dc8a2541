"""Response distributions of a cell, with derivatives in the linear predictors.

A family turns the linear predictors eta of each cell (one for a binary
response, four for the graded one) into the cell's negative log-likelihood
and its first and second derivatives in eta. The chain rule to the model
parameters lives in `objective.py`, so each family is written once for every
model that uses it.

Log-likelihoods here are those of the individual passes (Bernoulli or
categorical rows), without the binomial or multinomial coefficient of the
cell, so they equal the log-likelihood of a fit to one row per pass.
"""

import torch
from torch.nn.functional import logsigmoid


class BinaryResponse:
    """k safe passes out of n valid ones, each safe with probability sigmoid(eta)."""

    predictors = 1

    def __init__(self, safe: torch.Tensor, valid: torch.Tensor):
        self.safe = safe
        self.valid = valid

    def subset(self, rows: slice) -> "BinaryResponse":
        return BinaryResponse(self.safe[rows], self.valid[rows])

    def derivatives(self, eta: torch.Tensor, order: int = 2):
        """Return the per-cell negative log-likelihood and its derivatives in eta.

        eta has shape (cells, 1). The gradient has shape (cells, 1) and the
        Hessian (cells, 1, 1); the Hessian is None when order is 1.
        """
        eta = eta[:, 0]
        log_p = logsigmoid(eta)
        log_not_p = log_p - eta
        nll = -(self.safe * log_p + (self.valid - self.safe) * log_not_p)

        p = torch.sigmoid(eta)
        gradient = (self.valid * p - self.safe)[:, None]
        if order == 1:
            return nll, gradient, None
        hessian = (self.valid * p * (1 - p))[:, None, None]
        return nll, gradient, hessian


class GradedResponse:
    """Counts of the judge scores 1..5, with P(score >= s) = sigmoid(eta_s) for s = 2..5.

    The four predictors must decrease from eta_2 to eta_5, which the graded
    model guarantees through its positive steps.
    """

    predictors = 4

    def __init__(self, counts: torch.Tensor):
        self.counts = counts

    def subset(self, rows: slice) -> "GradedResponse":
        return GradedResponse(self.counts[rows])

    def derivatives(self, eta: torch.Tensor, order: int = 2):
        """Return the per-cell negative log-likelihood and its derivatives in eta.

        eta has shape (cells, 4). The gradient has shape (cells, 4) and the
        Hessian (cells, 4, 4), tridiagonal; the Hessian is None when order is 1.
        """
        log_p = logsigmoid(eta)
        log_not_p = logsigmoid(-eta)
        log_probability = self._log_category_probabilities(eta, log_p, log_not_p)
        observed = self.counts > 0
        nll = -torch.where(observed, self.counts * log_probability, 0.0).sum(1)

        # ratio[:, s, c] = q_s / P_c with q_s = p_s (1 - p_s), the derivative of
        # P(score >= s + 2) in eta_s. Predictor s is the upper bound of category
        # s + 1 and the lower bound of category s (categories counted from 0).
        log_q = log_p + log_not_p
        as_upper = torch.exp(log_q - log_probability[:, 1:])
        as_lower = torch.exp(log_q - log_probability[:, :-1])
        upper_counts = torch.where(observed[:, 1:], self.counts[:, 1:], 0.0)
        lower_counts = torch.where(observed[:, :-1], self.counts[:, :-1], 0.0)
        as_upper = torch.where(observed[:, 1:], as_upper, 0.0)
        as_lower = torch.where(observed[:, :-1], as_lower, 0.0)

        gradient = -(upper_counts * as_upper - lower_counts * as_lower)
        if order == 1:
            return nll, gradient, None

        curvature = 1 - 2 * torch.sigmoid(eta)
        diagonal = (upper_counts * (as_upper**2 - curvature * as_upper)
                    + lower_counts * (as_lower**2 + curvature * as_lower))
        # Category c + 1 has predictor c as its upper and c + 1 as its lower bound.
        off_diagonal = -upper_counts[:, :-1] * as_upper[:, :-1] * as_lower[:, 1:]
        hessian = torch.diag_embed(diagonal) + torch.diag_embed(off_diagonal, 1) + torch.diag_embed(off_diagonal, -1)
        return nll, gradient, hessian

    @staticmethod
    def _log_category_probabilities(eta, log_p, log_not_p):
        """Return log P(score = s) for s = 1..5 without cancellation."""
        # P(s) = sigmoid(eta_s) - sigmoid(eta_s+1)
        #      = sigmoid(eta_s) * sigmoid(-eta_s+1) * (1 - exp(-(eta_s - eta_s+1))).
        gap = eta[:, :-1] - eta[:, 1:]
        middle = log_p[:, :-1] + log_not_p[:, 1:] + torch.log(-torch.expm1(-gap))
        return torch.cat([log_not_p[:, :1], middle, log_p[:, -1:]], dim=1)
