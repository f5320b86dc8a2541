"""The analyses' headline numbers as a markdown fragment for `results/summary.md`."""

import pandas as pd

from xlsafety.analyses.fit import fit_headlines
from xlsafety.analyses.jsr import ability_jsr_correlation


def _number(value, digits: int = 3) -> str:
    return "NA" if pd.isna(value) else f"{value:.{digits}f}"


def render_fragment(
    judge: str,
    jsr_ability: pd.DataFrame,
    entropy_by_resource: pd.DataFrame,
    worse_counts: pd.DataFrame,
    tau_by_language: pd.DataFrame,
    dimensionality: pd.DataFrame,
    validation: pd.DataFrame,
    anchors: pd.DataFrame | None = None,
    dif: pd.DataFrame | None = None,
    model_comparison: pd.DataFrame | None = None,
    item_fit: pd.DataFrame | None = None,
    person_fit: pd.DataFrame | None = None,
    information: pd.DataFrame | None = None,
) -> str:
    """Write the headline numbers of every analysis of one judge as a markdown section.

    The anchor, model-fit and information tables are optional, and their lines
    are left out when a table is not given.
    """
    spearman = ability_jsr_correlation(jsr_ability)
    statistics = dict(zip(dimensionality["statistic"], dimensionality["value"]))
    pooled = validation[validation["fold"] == "all"]
    if "split" in pooled.columns:
        pooled = pooled[pooled["split"] == "k-fold"]

    lines = [
        f"## Analyses ({judge} judge)",
        "",
        f"- Spearman correlation of JSR with theta + delta over configuration x language: {_number(spearman)}",
        "- Mean outcome entropy across passes (bits), by resource level: "
        + ", ".join(f"{row.resource} {_number(row.mean_entropy)}" for row in entropy_by_resource.itertuples()),
    ]
    for row in worse_counts.itertuples():
        listed = f" ({row.configurations})" if isinstance(row.configurations, str) and row.configurations else ""
        lines.append(
            f"- Configurations less safe in English than in low-resource languages, by {row.criterion}: "
            f"{row.english_worse} of {row.assessed}{listed}"
        )
    if not tau_by_language.empty:
        widest = tau_by_language.sort_values("mean_abs_tau", ascending=False).iloc[0]
        lines.append(
            f"- Language with the largest mean |tau|: `{widest['language']}` ({_number(widest['mean_abs_tau'])})"
        )
    lines += [
        f"- First factor's share of variance: {_number(statistics.get('first_factor_share'))}; "
        f"Kendall's W of harm-category rankings: {_number(statistics.get('kendall_w'))}",
        "- Held-out log-loss per pass (AUC), k-fold: "
        + ", ".join(f"{row.model} {_number(row.log_loss, 4)} ({_number(row.auc)})" for row in pooled.itertuples()),
    ]
    if anchors is not None and dif is not None:
        lines += anchor_lines(anchors, dif)
    if model_comparison is not None and item_fit is not None and person_fit is not None:
        lines += fit_lines(model_comparison, item_fit, person_fit)
    if information is not None and not information.empty:
        lines += information_lines(information)
    return "\n".join(lines + [""])


def anchor_lines(anchors: pd.DataFrame, dif: pd.DataFrame) -> list[str]:
    """Return the lines on the selected anchors and on the agreement of the two DIF screens."""
    ids = ", ".join(str(value) for value in anchors["id"])
    agreement = dif["agreement"].dropna().astype(bool)
    if len(agreement):
        agreed = f"the screens agree on {_number(agreement.mean())} of {len(agreement)} pairs with both results"
    else:
        agreed = "no pair has both results"
    lord_flagged = int(dif["lord_flagged"].astype("boolean").fillna(False).sum())
    return [
        f"- DIF-free anchor prompts selected: {len(anchors)}" + (f" ({ids})" if ids else ""),
        f"- Prompt x language pairs flagged by Lord's chi-square: {lord_flagged} of {len(dif)}; "
        f"in Mantel-Haenszel class B or C: {int(dif['mh_flagged'].sum())}; {agreed}",
    ]


def fit_lines(model_comparison: pd.DataFrame, item_fit: pd.DataFrame, person_fit: pd.DataFrame) -> list[str]:
    """Return the lines on model selection and on item and person misfit."""
    headline = fit_headlines(model_comparison, item_fit, person_fit)
    return [
        f"- Best safe/unsafe IRT model by AIC: {headline['best_aic'] or 'NA'}; by BIC: {headline['best_bic'] or 'NA'}",
        f"- Prompts with infit or outfit outside 0.7..1.3: {headline['items_misfitting']} of {headline['items']}; "
        f"configurations: {headline['persons_misfitting']} of {headline['persons']} "
        f"(lowest lz {_number(headline['lowest_lz'])})",
    ]


def information_lines(information: pd.DataFrame) -> list[str]:
    """Return the line on the language whose test information peaks lowest."""
    peaks = information.groupby("language")["information"].max().sort_values()
    return [
        f"- Peak test information per language, lowest first: "
        + ", ".join(f"`{language}` {_number(value, 2)}" for language, value in peaks.head(3).items())
    ]
