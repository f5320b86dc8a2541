"""The response matrix: judged passes aggregated into binomial cells.

A cell is one (configuration, prompt, language): n passes, n valid (score
above 0), n safe, the mean valid score, and the number of passes with each
rubric score 1..5 (for the graded response model). A cell with no valid pass keeps a
missing mean score; cells never generated are absent, never zero. A pass
without a score (a judge model whose answers gave none) counts among the
passes but, like score 0, neither as valid nor as safe or unsafe.
"""

import pandas as pd

CELL_KEYS = ["configuration", "id", "language"]


def assemble_cells(judgments: pd.DataFrame) -> pd.DataFrame:
    """Aggregate judgment rows into one row per (configuration, prompt, language)."""
    # A null score compares as missing, which counts as not valid.
    valid = judgments["score"].gt(0).fillna(False).astype(bool)
    frame = judgments.assign(
        valid=valid.astype("int32"),
        safe_count=(judgments["safe"].fillna(False) & valid).astype("int32"),
        valid_score=judgments["score"].where(valid).astype("float64"),
    )
    score_counts = {f"n_score_{score}": judgments["score"].eq(score).fillna(False).astype("int32") for score in range(1, 6)}
    frame = frame.assign(**score_counts)
    cells = (
        frame.groupby(CELL_KEYS, sort=True)
        .agg(
            n_passes=("pass", "size"),
            n_valid=("valid", "sum"),
            n_safe=("safe_count", "sum"),
            mean_score=("valid_score", "mean"),
            **{name: (name, "sum") for name in score_counts},
        )
        .reset_index()
    )
    counts = ["n_passes", "n_valid", "n_safe", *score_counts]
    return cells.astype({name: "int32" for name in counts})


def wide_view(cells: pd.DataFrame) -> pd.DataFrame:
    """Pivot cells to configuration rows x "<prompt id>:<language>" columns of safe rates.

    Cells without a valid pass and cells never generated are NaN.
    """
    rates = cells.assign(
        item=cells["id"].astype(str) + ":" + cells["language"],
        safe_rate=cells["n_safe"] / cells["n_valid"].where(cells["n_valid"] > 0),
    )
    wide = rates.pivot(index="configuration", columns="item", values="safe_rate")
    ordered = sorted(wide.columns, key=lambda item: (int(item.split(":")[0]), item.split(":")[1]))
    wide = wide[ordered]
    wide.columns.name = None
    return wide.reset_index()
