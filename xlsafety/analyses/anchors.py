"""Selection of DIF-free anchor prompts: Lord's chi-square screen, cross-checked by Mantel-Haenszel.

Anchor prompts get tau = 0 in every language, which separates the language
difficulty gamma from the prompt x language gap tau. A good anchor shows no
differential item functioning (DIF) between the reference language and any
other language.

Lord's chi-square compares a prompt's item parameters from separate fits of
the reference language and of one focal language. The focal estimates are
put on the reference scale by mean/sigma linking on the prompts not flagged
so far, and linking and testing repeat until the flagged set stops changing
(iterative purification). A uniform shift of a whole language is absorbed by
the linking, so only prompt-specific shifts, the tau of the multigroup model,
count as DIF.

Mantel-Haenszel compares the odds of a safe pass in the reference and focal
language among configurations matched on their total safe score, and the ETS
rules classify the result as A (negligible), B (moderate) or C (large DIF).

A configuration plays the examinee and each pass of a cell counts as one
response.
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm

from xlsafety.irt import FitOptions, fit

log = logging.getLogger(__name__)

# Scale factor of the ETS delta metric: delta_MH = -2.35 ln(alpha_MH).
ETS_DELTA_SCALE = 2.35
# ETS thresholds on |delta_MH| between classes A and B and between B and C.
ETS_B_THRESHOLD = 1.0
ETS_C_THRESHOLD = 1.5

ITEM_MODELS = ("1pl", "2pl")

DIF_COLUMNS = [
    "id", "language", "informative", "lord_chi2", "lord_df", "lord_p", "lord_flagged", "lord_rounds",
    "mh_odds_ratio", "delta_mh", "delta_mh_se", "mh_chi2", "mh_p", "ets_class", "mh_flagged", "agreement",
    "selected",
]


@dataclass(frozen=True)
class AnchorSettings:
    """Settings of the anchor selection.

    count: the number of anchors to select at most.
    significance: the level of Lord's test, of the Mantel-Haenszel test and of
        the ETS test that |delta_MH| exceeds 1.
    model: the per-language item model, 2pl (location and discrimination) or
        1pl (location only).
    strata: the number of matched total-score strata of Mantel-Haenszel at most.
    purification_rounds: the maximum number of link-and-test rounds.
    max_iterations: the L-BFGS limit of each per-language fit.
    """

    count: int = 40
    significance: float = 0.05
    model: str = "2pl"
    strata: int = 10
    purification_rounds: int = 10
    max_iterations: int = 1000

    def __post_init__(self):
        if self.model not in ITEM_MODELS:
            raise ValueError(f"anchor selection model must be one of {ITEM_MODELS}, got {self.model!r}")
        if not 0 < self.significance < 1:
            raise ValueError(f"significance must lie between 0 and 1, got {self.significance!r}")
        for name in ("count", "strata", "purification_rounds", "max_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")


# Lord's chi-square


def item_parameters(cells: pd.DataFrame, language: str, model: str, max_iterations: int = 1000) -> pd.DataFrame:
    """Fit the unidimensional `model` to one language's cells and return b, a and their standard errors per prompt.

    The fit has the language's own origin and unit (b relative to the mean b,
    mean log a at its prior mean: xlsafety/irt/centring.py, units.py), so
    estimates from two languages need linking before they are compared.
    """
    own = cells[cells["language"] == language]
    result = fit(own, FitOptions(model=model, reference_language=language, max_iterations=max_iterations))
    table = result.parameters
    location = table.loc[table["parameter"] == "beta", ["id", "estimate", "se"]].rename(
        columns={"estimate": "b", "se": "b_se"})
    slope = table.loc[table["parameter"] == "alpha", ["id", "estimate", "se"]].rename(
        columns={"estimate": "a", "se": "a_se"})
    items = location.merge(slope, on="id", how="left")
    items["id"] = items["id"].astype(np.int64)
    return items.sort_values("id").reset_index(drop=True)


def mean_sigma_link(reference_b, focal_b, discrimination: bool) -> tuple[float, float]:
    """Return the slope A and intercept B that map focal locations onto the reference scale, b* = A b + B.

    Mean/sigma linking matches the mean and standard deviation of the linking
    prompts' locations. Without discrimination, or with fewer than 2 prompts
    or no spread, only the mean is matched (A = 1).
    """
    reference_b, focal_b = np.asarray(reference_b, float), np.asarray(focal_b, float)
    if len(focal_b) == 0:
        return 1.0, 0.0
    slope = 1.0
    if discrimination and len(focal_b) >= 2 and focal_b.std(ddof=1) > 0 and reference_b.std(ddof=1) > 0:
        slope = float(reference_b.std(ddof=1) / focal_b.std(ddof=1))
    return slope, float(reference_b.mean() - slope * focal_b.mean())


def lord_statistics(reference: pd.DataFrame, focal: pd.DataFrame, slope: float, intercept: float,
                    discrimination: bool) -> pd.DataFrame:
    """Return Lord's chi-square, its degrees of freedom and p-value per prompt in both tables.

    The focal estimates are linked first: b* = A b + B and a* = a / A, with
    standard errors scaled alike.
    """
    both = reference.merge(focal, on="id", suffixes=("_reference", "_focal"))
    linked_b = slope * both["b_focal"] + intercept
    difference_b = both["b_reference"] - linked_b
    variance_b = both["b_se_reference"] ** 2 + (slope * both["b_se_focal"]) ** 2
    # NOTE: the covariances of a and b within each fit and the uncertainty of the linking
    # constants are left out, because the Laplace table stores standard errors only.
    statistic = difference_b**2 / variance_b
    degrees = 1
    if discrimination:
        difference_a = both["a_reference"] - both["a_focal"] / slope
        variance_a = both["a_se_reference"] ** 2 + (both["a_se_focal"] / slope) ** 2
        statistic = statistic + difference_a**2 / variance_a
        degrees = 2
    return pd.DataFrame({"id": both["id"], "lord_chi2": statistic, "lord_df": degrees,
                         "lord_p": chi2.sf(statistic, degrees)})


def lord_screen(reference: pd.DataFrame, focal: pd.DataFrame, linkable: set, significance: float,
                discrimination: bool, rounds: int) -> pd.DataFrame:
    """Run Lord's test with iterative purification and return the statistics with a `lord_flagged` column.

    The first round links on every prompt in `linkable`. Each later round
    links on the linkable prompts that the previous round did not flag, until
    the flagged set repeats, fewer than 2 prompts remain to link on, or
    `rounds` rounds have run.
    """
    linking = sorted(linkable & set(reference["id"]) & set(focal["id"]))
    flagged: set = set()
    for number in range(1, rounds + 1):
        slope, intercept = _link_on(reference, focal, linking, discrimination)
        statistics = lord_statistics(reference, focal, slope, intercept, discrimination)
        now_flagged = set(statistics.loc[statistics["lord_p"] < significance, "id"])
        remaining = [prompt for prompt in linking if prompt not in now_flagged]
        if now_flagged == flagged or len(remaining) < 2:
            break
        flagged, linking = now_flagged, sorted(linkable - now_flagged)
    log.info("Lord's screen: %d of %d prompts flagged after %d rounds (A = %.3f, B = %.3f)", len(now_flagged),
             len(statistics), number, slope, intercept)
    return statistics.assign(lord_flagged=statistics["lord_p"] < significance, lord_rounds=number)


def _link_on(reference: pd.DataFrame, focal: pd.DataFrame, linking: list, discrimination: bool):
    reference_b = reference.set_index("id").loc[linking, "b"]
    focal_b = focal.set_index("id").loc[linking, "b"]
    return mean_sigma_link(reference_b, focal_b, discrimination)


# Mantel-Haenszel


def mantel_haenszel(tables) -> dict:
    """Return the Mantel-Haenszel common odds ratio, its ETS delta and the MH chi-square test of K 2x2 tables.

    `tables` has shape (K, 2, 2): row 0 the reference group, row 1 the focal
    group, column 0 the safe and column 1 the unsafe responses. An odds ratio
    above 1 (a negative delta_MH) means the prompt is safer in the reference
    group than in the focal group at the same total score. The standard error
    of ln(alpha_MH) is the Robins-Breslow-Greenland one, and the chi-square
    has a continuity correction. Strata with fewer than 2 responses carry no
    information and are skipped. The odds ratio is 0 or infinite when one of
    its sums is empty, with a NaN standard error, and NaN when both are.
    """
    tables = np.asarray(tables, dtype=float).reshape(-1, 2, 2)
    tables = tables[tables.sum(axis=(1, 2)) >= 2]
    a, b, c, d = tables[:, 0, 0], tables[:, 0, 1], tables[:, 1, 0], tables[:, 1, 1]
    total = a + b + c + d

    numerator, denominator = np.sum(a * d / total), np.sum(b * c / total)
    # One empty sum gives an odds ratio of 0 or infinity, for example when a prompt is never
    # safe in one group at any matched score. That is the largest DIF there is.
    if numerator == 0 and denominator == 0:
        odds_ratio = np.nan
    else:
        odds_ratio = np.inf if denominator == 0 else numerator / denominator
    with np.errstate(divide="ignore"):
        log_odds_ratio = np.log(odds_ratio)
    standard_error = _rbg_standard_error(a, b, c, d, total) if np.isfinite(log_odds_ratio) else np.nan

    expected = (a + b) * (a + c) / total
    variance = (a + b) * (c + d) * (a + c) * (b + d) / (total**2 * (total - 1))
    if variance.sum() > 0:
        statistic = max(abs(a.sum() - expected.sum()) - 0.5, 0.0) ** 2 / variance.sum()
        p_value = float(chi2.sf(statistic, 1))
    else:
        statistic = p_value = np.nan
    return {
        "mh_odds_ratio": float(odds_ratio),
        "delta_mh": float(-ETS_DELTA_SCALE * log_odds_ratio),
        "delta_mh_se": float(ETS_DELTA_SCALE * standard_error),
        "mh_chi2": float(statistic),
        "mh_p": p_value,
    }


def _rbg_standard_error(a, b, c, d, total) -> float:
    """Return the Robins-Breslow-Greenland standard error of ln(alpha_MH)."""
    p, q = (a + d) / total, (b + c) / total
    r, s = a * d / total, b * c / total
    variance = (np.sum(p * r) / (2 * r.sum() ** 2) + np.sum(p * s + q * r) / (2 * r.sum() * s.sum())
                + np.sum(q * s) / (2 * s.sum() ** 2))
    return float(np.sqrt(variance))


def ets_class(delta: float, delta_se: float, p_value: float, significance: float = 0.05) -> str:
    """Return the ETS DIF class of a Mantel-Haenszel result, or "" where delta_MH is undefined.

    A: |delta_MH| < 1, or the MH chi-square is not significant.
    C: |delta_MH| >= 1.5 and |delta_MH| is significantly greater than 1 (one-sided z test).
    B: every other case.
    """
    if np.isnan(delta) or np.isnan(p_value):
        return ""
    if abs(delta) < ETS_B_THRESHOLD or p_value >= significance:
        return "A"
    # An infinite delta (an odds ratio of 0 or infinity) has no standard error but is beyond any bound.
    beyond_one = (abs(delta) - ETS_B_THRESHOLD) / delta_se if np.isfinite(delta) and delta_se > 0 else np.inf
    if abs(delta) >= ETS_C_THRESHOLD and beyond_one > norm.ppf(1 - significance):
        return "C"
    return "B"


def score_strata(scores, strata: int) -> np.ndarray:
    """Return the stratum of each total score: quantile bins of the pooled scores, at most `strata` of them.

    Configurations are few next to the possible total scores, so single-score
    strata would leave most tables with one group only. Ties always share a stratum.
    """
    scores = np.asarray(scores, dtype=float)
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, strata + 1)[1:-1]))
    return np.searchsorted(edges, scores, side="right")


def mantel_haenszel_screen(cells: pd.DataFrame, reference_language: str, language: str, settings: AnchorSettings,
                           linkable: set) -> pd.DataFrame:
    """Run Mantel-Haenszel for every prompt of one focal language, with iterative purification.

    A configuration's matching score in a language is the sum of its safe
    shares over the matching prompts, scaled up to the number of matching
    prompts when some of its cells are missing. The matching prompts are the
    linkable prompts not in class B or C in the previous round, plus the
    studied prompt.
    """
    pair = cells[cells["language"].isin([reference_language, language])]
    safe = pair.pivot_table(index=["language", "configuration"], columns="id", values="n_safe", aggfunc="sum")
    valid = pair.pivot_table(index=["language", "configuration"], columns="id", values="n_valid", aggfunc="sum")
    valid = valid.where(valid > 0)
    prompts = list(valid.columns)
    is_focal = (valid.index.get_level_values("language") == language).astype(int)
    safe_counts, valid_counts = safe.reindex_like(valid).to_numpy(float), valid.to_numpy(float)
    rates = safe_counts / valid_counts

    candidates = set(linkable) & set(prompts)
    matching, flagged = candidates, None
    for _ in range(settings.purification_rounds):
        in_matching = np.array([prompt in matching for prompt in prompts])
        results = pd.DataFrame([
            {"id": prompt, **_mantel_haenszel_prompt(rates, safe_counts, valid_counts, is_focal, in_matching, column,
                                                     settings.strata)}
            for column, prompt in enumerate(prompts)
        ])
        results["ets_class"] = [ets_class(row.delta_mh, row.delta_mh_se, row.mh_p, settings.significance)
                                for row in results.itertuples()]
        now_flagged = set(results.loc[results["ets_class"].isin(["B", "C"]), "id"])
        if now_flagged == flagged or len(candidates - now_flagged) < 2:
            break
        flagged, matching = now_flagged, candidates - now_flagged
    return results


def _mantel_haenszel_prompt(rates, safe, valid, is_focal, in_matching, column: int, strata: int) -> dict:
    """Return the Mantel-Haenszel statistics of the prompt in `column`, matching on it and the `in_matching` prompts.

    The arrays have one row per (language, configuration) and one column per
    prompt, with NaN rates where a cell has no valid pass.
    """
    matching = in_matching.copy()
    matching[column] = True
    answered = ~np.isnan(rates[:, matching])
    counted = answered.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nansum(rates[:, matching], axis=1) * matching.sum() / counted
    # Rounded, so that equal scores summed in another order still fall into the same stratum.
    total = np.round(total, 9)
    has_cell = ~np.isnan(valid[:, column]) & (counted > 0)
    if not has_cell.any():
        return mantel_haenszel(np.zeros((0, 2, 2)))

    stratum = score_strata(total[has_cell], strata)
    safe_passes = safe[has_cell, column]
    unsafe_passes = valid[has_cell, column] - safe_passes
    group = is_focal[has_cell]
    tables = np.zeros((stratum.max() + 1, 2, 2))
    np.add.at(tables, (stratum, group, 0), safe_passes)
    np.add.at(tables, (stratum, group, 1), unsafe_passes)
    return mantel_haenszel(tables)


# Both screens and the selection


def informative_prompts(cells: pd.DataFrame, language: str) -> set:
    """Return the prompts with both safe and unsafe passes in `language`.

    A prompt that is always safe or never safe in a language has item
    parameters set by the priors alone, so it is neither linked on nor selected.
    """
    own = cells[cells["language"] == language].groupby("id")[["n_safe", "n_valid"]].sum()
    return set(own.index[(own["n_safe"] > 0) & (own["n_safe"] < own["n_valid"])])


def dif_table(cells: pd.DataFrame, reference_language: str, settings: AnchorSettings) -> pd.DataFrame:
    """Return both DIF screens per (prompt, focal language); `selected` is filled in by `select_anchors`.

    `agreement` is True where Lord's test flags the prompt exactly when
    Mantel-Haenszel puts it in class B or C, and missing where delta_MH is
    undefined.
    """
    used = cells[cells["n_valid"] > 0]
    languages = sorted(set(used["language"]) - {reference_language})
    if reference_language not in set(used["language"]) or not languages:
        log.warning("no language to compare with the reference language %s, so no prompt is screened for DIF",
                    reference_language)
        return pd.DataFrame({column: [] for column in DIF_COLUMNS})

    discrimination = settings.model == "2pl"
    reference_items = item_parameters(used, reference_language, settings.model, settings.max_iterations)
    reference_informative = informative_prompts(used, reference_language)
    frames = []
    for language in languages:
        log.info("screening %s against %s", language, reference_language)
        focal_items = item_parameters(used, language, settings.model, settings.max_iterations)
        linkable = reference_informative & informative_prompts(used, language)
        lord = lord_screen(reference_items, focal_items, linkable, settings.significance, discrimination,
                           settings.purification_rounds)
        mantel = mantel_haenszel_screen(used, reference_language, language, settings, linkable)
        frames.append(lord.merge(mantel, on="id", how="outer").assign(
            language=language, informative=lambda frame: frame["id"].isin(linkable)))
    return _finish_dif_table(pd.concat(frames, ignore_index=True))


def _finish_dif_table(table: pd.DataFrame) -> pd.DataFrame:
    table["lord_flagged"] = table["lord_flagged"].astype("boolean")
    table["mh_flagged"] = table["ets_class"].isin(["B", "C"])
    table["agreement"] = (table["lord_flagged"] == table["mh_flagged"]).astype("boolean")
    table.loc[table["ets_class"].fillna("") == "", "agreement"] = pd.NA
    table["selected"] = False
    table["id"] = table["id"].astype(np.int64)
    return table[DIF_COLUMNS].sort_values(["language", "id"]).reset_index(drop=True)


def select_anchors(dif: pd.DataFrame, count: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Select up to `count` anchors and return (anchors, dif with `selected` set).

    A prompt qualifies when it is informative in every focal language, Lord's
    test flags it in none and Mantel-Haenszel puts it in class B or C in none.
    The qualifying prompts with the largest smallest Lord p-value across
    languages, the clearest absence of DIF, are taken first, ties by id.
    """
    per_prompt = dif.groupby("id").agg(
        informative=("informative", "all"),
        lord_flagged=("lord_flagged", lambda flags: bool(flags.fillna(True).any())),
        mh_flagged=("mh_flagged", "any"),
        min_lord_p=("lord_p", "min"),
        max_abs_delta_mh=("delta_mh", lambda values: values.abs().max()),
    ).reset_index()
    qualifies = per_prompt["informative"] & ~per_prompt["lord_flagged"] & ~per_prompt["mh_flagged"]
    ranked = per_prompt[qualifies].sort_values(["min_lord_p", "id"], ascending=[False, True])
    anchors = ranked.head(count)[["id", "min_lord_p", "max_abs_delta_mh"]].reset_index(drop=True)
    if len(ranked) < count:
        log.warning("only %d of %d prompts qualify as DIF-free anchors, fewer than the %d requested",
                    len(ranked), len(per_prompt), count)
    log.info("selected %d anchors: %s", len(anchors), anchors["id"].tolist())
    return anchors, dif.assign(selected=dif["id"].isin(set(anchors["id"])))
