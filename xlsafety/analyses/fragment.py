"""The analyses' headline numbers as a markdown fragment for `results/summary.md`."""

import pandas as pd

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
) -> str:
    """Write the headline numbers of every analysis of one judge as a markdown section."""
    spearman = ability_jsr_correlation(jsr_ability)
    statistics = dict(zip(dimensionality["statistic"], dimensionality["value"]))
    pooled = validation[validation["fold"] == "all"]

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
        "- Held-out log-loss per pass (AUC): "
        + ", ".join(f"{row.model} {_number(row.log_loss, 4)} ({_number(row.auc)})" for row in pooled.itertuples()),
        "",
    ]
    return "\n".join(lines)
