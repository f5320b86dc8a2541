"""Configurations that are less safe in English than in the low-resource languages."""

import logging

import pandas as pd

from xlsafety.analyses.common import ability, pooled_rates, resource_level

log = logging.getLogger(__name__)


def english_worse(
    cells: pd.DataFrame, parameters: pd.DataFrame, reference_language: str = "en", comparison_level: str = "low"
) -> pd.DataFrame:
    """Compare each configuration's safety in the reference language with the `comparison_level` languages.

    Returns one row per configuration with:
    - jsr_reference and jsr_comparison: JSR in the reference language and
      pooled over the valid passes of all comparison languages;
    - ability_reference and ability_comparison: theta + delta in the reference
      language (where delta is 0) and averaged over the comparison languages;
    - worse_by_jsr: True where the reference JSR is higher (less safe);
    - worse_by_ability: True where the reference theta + delta is lower.
    Both flags are missing where a side has no data, for example when the
    study has no language of the comparison level.
    """
    languages = cells["language"].unique()
    comparison = sorted(language for language in languages if resource_level(language) == comparison_level)
    if not comparison:
        log.warning("no %s-resource language in the study, so English-worse cannot be assessed", comparison_level)
    configurations = sorted(cells["configuration"].unique())

    by_jsr = _jsr_sides(cells, configurations, reference_language, comparison)
    by_ability = _ability_sides(parameters, configurations, reference_language, comparison)
    table = by_jsr.merge(by_ability, on="configuration")

    table["worse_by_jsr"] = _strictly_greater(table["jsr_reference"], table["jsr_comparison"])
    table["worse_by_ability"] = _strictly_greater(table["ability_comparison"], table["ability_reference"])
    table["comparison_languages"] = " ".join(comparison)
    return table


def english_worse_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Count the English-worse configurations by each criterion, with the configurations named."""
    rows = []
    for criterion in ("jsr", "ability"):
        flags = table[f"worse_by_{criterion}"]
        rows.append(
            {
                "criterion": criterion,
                "assessed": int(flags.notna().sum()),
                "english_worse": int(flags.fillna(False).astype(bool).sum()),
                "configurations": " ".join(table.loc[flags.fillna(False).astype(bool), "configuration"]),
            }
        )
    return pd.DataFrame(rows)


def _jsr_sides(cells, configurations, reference_language, comparison) -> pd.DataFrame:
    reference = pooled_rates(cells[cells["language"] == reference_language], ["configuration"])
    others = pooled_rates(cells[cells["language"].isin(comparison)], ["configuration"])
    table = pd.DataFrame({"configuration": configurations})
    table = table.merge(reference[["configuration", "jsr"]].rename(columns={"jsr": "jsr_reference"}), how="left")
    return table.merge(others[["configuration", "jsr"]].rename(columns={"jsr": "jsr_comparison"}), how="left")


def _ability_sides(parameters, configurations, reference_language, comparison) -> pd.DataFrame:
    robustness = ability(parameters, configurations, [reference_language, *comparison])
    reference = robustness[robustness["language"] == reference_language].set_index("configuration")["ability"]
    others = robustness[robustness["language"].isin(comparison)].groupby("configuration")["ability"].mean()
    return pd.DataFrame(
        {
            "configuration": configurations,
            "ability_reference": reference.reindex(configurations).to_numpy(),
            "ability_comparison": others.reindex(configurations).to_numpy(),
        }
    )


def _strictly_greater(left: pd.Series, right: pd.Series) -> pd.Series:
    """Return left > right as a nullable boolean that is missing where either side is NaN."""
    result = (left > right).astype("boolean")
    return result.mask(left.isna() | right.isna())
