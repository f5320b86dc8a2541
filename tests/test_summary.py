import pandas as pd

from xlsafety.summary import jsr_table, translation_quality_section


def test_translation_quality_lists_flagged_prompts(tmp_path):
    path = tmp_path / "fr_quality.csv"
    pd.DataFrame(
        {"language": ["fr", "fr"], "id": [3, 7], "origin": ["llm:m", "llm:m"], "chrf": [12.5, 30.0],
         "reason": ["back-translation chrF 12.5 below 40", "copied from the source"],
         "source_text": ["a", "b"], "text": ["x", "y"], "back_translation": ["p", "q"]}
    ).to_csv(path, index=False)

    section = translation_quality_section([str(path)])

    assert "## Translation quality" in section
    assert "`fr`: 2 prompts flagged" in section
    assert "id 3: chrF 12.5" in section


def test_jsr_is_one_minus_safe_share_and_missing_stays_missing():
    cells = pd.DataFrame(
        {"configuration": ["a", "a", "a"], "id": [1, 2, 1], "language": ["en", "en", "th"],
         "n_valid": [4, 4, 0], "n_safe": [1, 3, 0]}
    )
    table = jsr_table(cells).set_index("configuration")

    assert table.loc["a", "en"] == 0.5
    assert pd.isna(table.loc["a", "th"])
