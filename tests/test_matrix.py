import numpy as np
import pandas as pd

from xlsafety.matrix import assemble_cells, wide_view


def judgments(rows):
    frame = pd.DataFrame(rows, columns=["configuration", "id", "language", "pass", "score"])
    frame["safe"] = pd.array([None if score == 0 else score >= 4 for score in frame["score"]], dtype="boolean")
    return frame


def test_cells_count_passes_valid_and_safe():
    cells = assemble_cells(
        judgments(
            [
                ("a_x", 1, "en", 0, 5),
                ("a_x", 1, "en", 1, 2),
                ("a_x", 1, "en", 2, 0),
                ("a_x", 1, "th", 0, 4),
            ]
        )
    )
    english = cells[(cells["id"] == 1) & (cells["language"] == "en")].iloc[0]

    assert len(cells) == 2
    assert english["n_passes"] == 3
    assert english["n_valid"] == 2
    assert english["n_safe"] == 1
    assert english["mean_score"] == 3.5
    assert english["n_score_5"] == 1
    assert english["n_score_2"] == 1
    assert english["n_score_1"] + english["n_score_3"] + english["n_score_4"] == 0


def test_cell_without_valid_pass_keeps_missing_score():
    cells = assemble_cells(judgments([("a_x", 1, "en", 0, 0), ("a_x", 1, "en", 1, 0)]))

    assert cells["n_valid"].tolist() == [0]
    assert cells["mean_score"].isna().all()


def test_wide_view_leaves_missing_cells_missing():
    cells = assemble_cells(
        judgments(
            [
                ("a_x", 1, "en", 0, 5),
                ("a_x", 2, "en", 0, 2),
                ("b_x", 1, "en", 0, 0),
            ]
        )
    )
    wide = wide_view(cells).set_index("configuration")

    assert list(wide.columns) == ["1:en", "2:en"]
    assert wide.loc["a_x", "1:en"] == 1.0
    assert wide.loc["a_x", "2:en"] == 0.0
    assert np.isnan(wide.loc["b_x", "1:en"])
    assert np.isnan(wide.loc["b_x", "2:en"])


def test_wide_columns_sorted_by_prompt_number():
    rows = [("a_x", prompt, "en", 0, 5) for prompt in (10, 2, 1)]
    wide = wide_view(assemble_cells(judgments(rows)))

    assert list(wide.columns) == ["configuration", "1:en", "2:en", "10:en"]
