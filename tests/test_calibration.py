"""The calibration set, judge agreement with its labels, pairwise judge agreement, and their rules."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from xlsafety.errors import ConfigError, DatasetError
from xlsafety.judges import judge_generations, make_judge
from xlsafety.judges.agreement import cohen_kappa, pairwise_agreement, score_agreement
from xlsafety.judges.calibration import (
    CALIBRATION_JUDGMENTS,
    CALIBRATION_SUMMARY,
    CATEGORY_SCORES,
    agreement_by_language,
    calibrated_languages,
    calibration_cases,
    calibration_judgments,
    calibration_summary,
    flag_languages,
    load_calibration,
    shipped_calibration_path,
)
from xlsafety.judges.refusal import check_judge_languages
from xlsafety.summary import calibration_section, judge_agreement_section
from xlsafety.tables import write_table

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
MULTIJAIL = ["en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv"]


# The shipped calibration set


@pytest.fixture(scope="module")
def shipped():
    return load_calibration(shipped_calibration_path())


def test_shipped_set_covers_multijail_languages(shipped):
    counts = shipped["language"].value_counts()

    assert sorted(counts.index) == sorted(MULTIJAIL)
    assert (counts >= 10).all()


@pytest.mark.parametrize("language", MULTIJAIL)
def test_shipped_set_has_every_category(shipped, language):
    rows = shipped[shipped["language"] == language]

    assert set(rows["category"]) == set(CATEGORY_SCORES)
    assert set(rows["score"]) == {0, 1, 2, 3, 4, 5}
    assert rows["prompt"].str.strip().ne("").all()


def test_shipped_set_marks_translations(shipped):
    english = shipped[shipped["language"] == "en"]
    others = shipped[shipped["language"] != "en"]

    assert (english["origin"] == "original").all()
    assert (others["origin"] == "machine_translated").all()


def test_shipped_items_parallel_across_languages(shipped):
    # Every language has the same items with the same labels, so per-language numbers are comparable.
    labels = shipped.pivot(index="item", columns="language", values="score")

    assert not labels.isna().any().any()
    assert (labels.nunique(axis=1) == 1).all()


def test_harmful_compliance_uses_placeholders(shipped):
    harmful = shipped[shipped["category"] == "harmful_compliance"]

    assert len(harmful) >= 20
    assert harmful["response"].str.contains(r"\[[^\]]+\]").all()


def test_shipped_set_keeps_empty_response(shipped):
    assert (shipped.loc[shipped["item"] == 10, "response"] == "").all()


# Loading errors


def write_set(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


GOOD_ROW = {"item": 1, "language": "en", "prompt": "p", "response": "r", "score": 5,
            "category": "clear_refusal", "origin": "original"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score": 7}, "data row 1: score must be an integer from 0 to 5"),
        ({"score": 2}, "score 2 does not fit category 'clear_refusal'"),
        ({"category": "refusal"}, "category 'refusal' is not one of"),
        ({"origin": "translated"}, "origin 'translated' is not one of"),
        ({"item": "x"}, "item must be a non-negative integer"),
        ({"prompt": ""}, "language and prompt must not be empty"),
    ],
)
def test_bad_calibration_row_rejected(tmp_path, change, message):
    path = write_set(tmp_path / "set.csv", [dict(GOOD_ROW, **change)])

    with pytest.raises(DatasetError, match=re.escape(message)) as error:
        load_calibration(path)

    assert str(path) in str(error.value)


def test_missing_column_rejected(tmp_path):
    row = {key: value for key, value in GOOD_ROW.items() if key != "origin"}

    with pytest.raises(DatasetError, match=r"lacks columns \['origin'\]"):
        load_calibration(write_set(tmp_path / "set.csv", [row]))


def test_duplicate_item_rejected(tmp_path):
    with pytest.raises(DatasetError, match="occur more than once"):
        load_calibration(write_set(tmp_path / "set.csv", [GOOD_ROW, GOOD_ROW]))


def test_multiline_and_comma_cells_round_trip(tmp_path):
    text = "第一行，第二行\nسطر، آخر, \"quoted\""
    frame = load_calibration(write_set(tmp_path / "set.csv", [dict(GOOD_ROW, response=text)]))

    assert frame["response"].tolist() == [text]


# Cohen's kappa


def test_kappa_by_hand():
    # 7 pairs, 5 agree: p_o = 5/7. Both sides say safe 4 times: p_e = (4/7)^2 + (3/7)^2 = 25/49.
    # kappa = (35/49 - 25/49) / (24/49) = 10/24.
    first = [True, True, True, False, False, False, True]
    second = [True, False, True, True, False, False, True]

    assert cohen_kappa(first, second) == pytest.approx(10 / 24)


def test_kappa_perfect_and_chance():
    assert cohen_kappa([True, False, True, False], [True, False, True, False]) == pytest.approx(1.0)
    assert cohen_kappa([True, True, False, False], [True, False, True, False]) == pytest.approx(0.0)
    assert cohen_kappa([True, True], [False, False]) == pytest.approx(0.0)


def test_kappa_undefined_cases():
    assert math.isnan(cohen_kappa([], []))
    assert math.isnan(cohen_kappa([True, True, True], [True, True, True]))


def test_kappa_length_mismatch_raises():
    with pytest.raises(ValueError, match="equal length"):
        cohen_kappa([True], [True, False])


# Agreement with the calibration labels, on a fixture computed by hand


def judged_fixture() -> pd.DataFrame:
    rows = {
        # Row by row: binary pairs are rows 1-6 and 10; row 9 is unscored; rows 7 and 8 have label 0.
        "xx": ([5, 5, 4, 3, 2, 1, 0, 0, 2, 5], [5, 2, 5, 5, 2, 2, 0, 2, None, 5]),
        "yy": ([5, 2], [5, 2]),
        "zz": ([5, 5], [5, 5]),
    }
    frames = []
    for language, (labels, scores) in rows.items():
        frames.append(pd.DataFrame({
            "judge": "j", "judge_version": "v1", "language": language, "item": range(1, len(labels) + 1),
            "category": "clear_refusal", "origin": "original", "label": labels,
            "score": pd.array(scores, dtype="Int8"), "reason": "", "unscored_reason": None, "decided_by": "j",
        }))
    return pd.concat(frames, ignore_index=True)


def test_agreement_by_language_by_hand():
    agreement = agreement_by_language(judged_fixture(), ["xx", "yy", "zz"], "j", "v1").set_index("language")
    xx = agreement.loc["xx"]

    assert (xx["n_rows"], xx["n_scored"], xx["n_binary"]) == (10, 9, 7)
    # Outcomes match on rows 1, 3, 5, 6, 7 and 10 of the 9 scored rows.
    assert xx["accuracy"] == pytest.approx(6 / 9)
    # Scores are equal on rows 1, 5, 7 and 10.
    assert xx["exact_agreement"] == pytest.approx(4 / 9)
    # The binary rows are the pairs of test_kappa_by_hand.
    assert xx["kappa"] == pytest.approx(10 / 24)
    assert agreement.loc["yy", "kappa"] == pytest.approx(1.0)
    assert math.isnan(agreement.loc["zz", "kappa"])


def test_pooled_agreement_by_hand():
    pooled = agreement_by_language(judged_fixture(), ["xx", "yy", "zz"], "j", "v1").set_index("language").loc["all"]

    # 11 binary rows, 9 agree, 7 safe on each side: (9/11 - 65/121) / (56/121) = 34/56.
    assert pooled["n_binary"] == 11
    assert pooled["kappa"] == pytest.approx(34 / 56)
    assert pooled["exact_agreement"] == pytest.approx(8 / 13)


def test_flags_below_threshold_and_undefined():
    agreement = agreement_by_language(judged_fixture(), ["xx", "yy", "zz"], "j", "v1")
    summary = flag_languages(agreement, 0.6)
    flagged = summary.set_index("language")

    assert list(summary.columns) == CALIBRATION_SUMMARY.names
    assert flagged["flagged"].to_dict() == {"xx": True, "yy": False, "zz": True, "all": False}
    assert flagged.loc["xx", "flag_reason"] == "kappa below min_kappa"
    assert "undefined" in flagged.loc["zz", "flag_reason"]
    assert flagged.loc["yy", "flag_reason"] is None


def test_language_without_rows_flagged():
    agreement = agreement_by_language(judged_fixture(), ["yy", "fr"], "j", "v1")
    flagged = flag_languages(agreement, 0.6).set_index("language")

    assert flagged.loc["fr", "n_rows"] == 0
    assert math.isnan(flagged.loc["fr", "kappa"])
    assert flagged.loc["fr", "flagged"]
    assert flagged.loc["fr", "flag_reason"] == "no calibration rows for this language"
    assert not flagged.loc["yy", "flagged"]


def judge_shipped(shipped, languages: list[str]) -> pd.DataFrame:
    calibration = shipped[shipped["language"].isin(languages)].reset_index(drop=True)
    generations, prompts = calibration_cases(calibration)
    judgments = judge_generations(make_judge("refusal", languages), generations, prompts)
    return calibration_judgments(calibration, judgments)


def test_refusal_judge_on_shipped_set(shipped):
    judged = judge_shipped(shipped, MULTIJAIL)
    agreement = agreement_by_language(judged, MULTIJAIL, "refusal", judged["judge_version"].iloc[0])

    # Per language, the phrase judge refuses items 1, 3, 7 and 12, gives 0 to items 9 and 10 and 2
    # to the rest. On the 9 binary items, 5 agree and each side says safe 4 times:
    # kappa = (5/9 - 41/81) / (40/81) = 0.1. Exact agreement: items 1, 2, 7, 8, 9 and 10 of 12.
    for row in agreement.itertuples():
        assert row.n_binary == (9 if row.language != "all" else 90)
        assert row.kappa == pytest.approx(0.1), row.language
        assert row.exact_agreement == pytest.approx(6 / 12), row.language
        assert row.accuracy == pytest.approx(7 / 12), row.language


def test_summary_gathers_job_outputs(tmp_path, shipped):
    paths = []
    for language in ["en", "th"]:
        path = tmp_path / "calibration" / "refusal" / f"{language}.parquet"
        write_table(judge_shipped(shipped, [language]), path, CALIBRATION_JUDGMENTS)
        paths.append(str(path))

    summary = calibration_summary(paths, ["refusal"], ["en", "th", "fr"], 0.05)

    assert summary["language"].tolist() == ["en", "th", "fr", "all"]
    assert summary["n_rows"].tolist() == [12, 12, 0, 24]
    assert summary["flagged"].tolist() == [False, False, True, False]
    assert summary["kappa"].iloc[3] == pytest.approx(0.1)


def test_calibrated_languages_in_study_order(caplog):
    languages = calibrated_languages(shipped_calibration_path(), ["th", "fr", "en"])

    assert languages == ["th", "en"]
    assert "['fr']" in caplog.text


def test_bad_calibration_path_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="calibration.path: .* not found"):
        calibrated_languages(tmp_path / "missing.csv", ["en"])

    path = write_set(tmp_path / "set.csv", [dict(GOOD_ROW, score=9)])
    with pytest.raises(ConfigError, match="calibration.path: .*data row 1"):
        calibrated_languages(path, ["en"])


# Pairwise agreement between judges, on a fixture computed by hand


def judgments_fixture(scores: dict[str, list]) -> pd.DataFrame:
    rows = []
    for language, values in scores.items():
        for position, score in enumerate(values, start=1):
            rows.append({"configuration": "m_greedy", "language": language, "id": position, "pass": 0,
                         "score": score})
    frame = pd.DataFrame(rows)
    frame["score"] = pd.array(frame["score"], dtype="Int8")
    return frame


def test_pairwise_agreement_by_hand():
    judgments = {
        "a": judgments_fixture({"en": [5, 5, 2, 2, 0], "th": [5, 2, None, 2]}),
        "b": judgments_fixture({"en": [5, 2, 2, 2, 0], "th": [5, 2, 5, 0]}),
    }
    table = pairwise_agreement(judgments, ["en", "th"]).set_index("language")

    # en: 4 binary pairs, 3 agree, p_e = 0.5 * 0.25 + 0.5 * 0.75 = 0.5, kappa = 0.5; 4 of 5 scores equal.
    assert table.loc["en", ["n_rows", "n_both_scored", "n_binary"]].tolist() == [5, 5, 4]
    assert table.loc["en", "kappa"] == pytest.approx(0.5)
    assert table.loc["en", "exact_agreement"] == pytest.approx(4 / 5)
    # th: the unscored row leaves 3 rows both scored, of which (2, 0) is not binary.
    assert table.loc["th", ["n_rows", "n_both_scored", "n_binary"]].tolist() == [4, 3, 2]
    assert table.loc["th", "kappa"] == pytest.approx(1.0)
    assert table.loc["th", "exact_agreement"] == pytest.approx(2 / 3)
    # Pooled: 6 binary pairs, 5 agree, p_e = 0.5, kappa = 2/3; 6 of 8 scores equal.
    assert table.loc["all", "kappa"] == pytest.approx(2 / 3)
    assert table.loc["all", "exact_agreement"] == pytest.approx(6 / 8)


def test_pairwise_agreement_every_pair_in_order():
    base = judgments_fixture({"en": [5, 2, 2]})
    shorter = base.iloc[:2]
    table = pairwise_agreement({"a": base, "b": base, "c": shorter}, ["en"])
    en = table[table["language"] == "en"]

    assert list(zip(en["judge_a"], en["judge_b"])) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert en["n_rows"].tolist() == [3, 2, 2]
    assert en["exact_agreement"].tolist() == [1.0, 1.0, 1.0]


def test_score_agreement_without_rows():
    result = score_agreement(pd.Series([], dtype="Int8"), pd.Series([], dtype="Int8"))

    assert result["n_both_scored"] == 0
    assert math.isnan(result["kappa"])
    assert math.isnan(result["exact_agreement"])


# Summary sections


def test_calibration_section_lists_flagged_languages():
    summary = flag_languages(agreement_by_language(judged_fixture(), ["xx", "yy", "zz"], "j", "v1"), 0.6)
    section = calibration_section(summary)

    assert "## Judge calibration" in section
    assert "**Flagged languages** (kappa below 0.60 or undefined): `j`: xx, zz." in section
    assert "never agrees exactly on labels 1, 3 and 4" in section


def test_calibration_section_without_flags():
    summary = flag_languages(agreement_by_language(judged_fixture(), ["yy"], "j", "v1"), 0.6)

    assert "No language is flagged" in calibration_section(summary)


def test_judge_agreement_section_table():
    judgments = {"a": judgments_fixture({"en": [5, 2]}), "b": judgments_fixture({"en": [5, 5]})}
    section = judge_agreement_section(pairwise_agreement(judgments, ["en"]))

    assert "## Agreement between judges" in section
    assert "| a | b | en | 2 | 2 |" in section


# Config check at start


def study_config(**changes) -> dict:
    config = {"languages": ["en", "am"], "judges": ["refusal"], "judge_definitions": {}}
    config.update(changes)
    return config


def test_language_without_phrases_rejected_at_start():
    with pytest.raises(ConfigError, match=r"judges \['refusal'\].*\['am'\].*refusal_phrases.yaml"):
        check_judge_languages(study_config())


def test_cascade_needs_phrase_lists():
    definitions = {"rubric-x": {"kind": "rubric"}, "cascade-x": {"kind": "cascade", "rubric": "rubric-x"}}

    with pytest.raises(ConfigError, match=r"\['cascade-x'\]"):
        check_judge_languages(study_config(judges=["cascade-x"], judge_definitions=definitions))


def test_rubric_judge_needs_no_phrase_lists():
    check_judge_languages(study_config(judges=["rubric-x"], judge_definitions={"rubric-x": {"kind": "rubric"}}))


def test_simulated_source_needs_no_phrase_lists():
    check_judge_languages(study_config(source={"kind": "simulate"}))


# The rules


def snakemake(workdir: Path, configfile: Path, *arguments: str, environment: dict | None = None):
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
               str(configfile), "--cores", "1", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1]
    return {rule: int(count) for rule, count in re.findall(r"^([a-z_]+)\s+(\d+)$", table, flags=re.M)}


def test_one_judge_schedules_calibration_only(tmp_path):
    result = snakemake(tmp_path, ROOT / "tests" / "configs" / "tiny.yaml", "-n")
    counts = job_counts(result.stdout)

    assert result.returncode == 0, result.stderr[-3000:]
    assert counts["calibrate"] == 2
    assert counts["calibration_summary"] == 1
    assert "judge_agreement" not in counts
    assert "results/calibration/summary.parquet" in result.stdout


def api_environment() -> dict:
    environment = {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}
    environment["XLSAFETY_TEST_API_KEY"] = "sk-test-calibration"
    return environment


def test_several_judges_schedule_agreement(tmp_path):
    result = snakemake(tmp_path, ROOT / "tests" / "configs" / "judge-tiny.yaml", "-n",
                       environment=api_environment())
    counts = job_counts(result.stdout)

    assert result.returncode == 0, result.stderr[-3000:]
    # refusal in two languages, and rubric-fake and cascade-fake in two languages each.
    assert counts["calibrate"] == 2
    assert counts["calibrate_api"] == 4
    assert counts["calibration_summary"] == 1
    assert counts["judge_agreement"] == 1


def test_language_without_phrases_stops_workflow(tmp_path):
    overrides = ["languages=[en, th, am]", "translation={am: {backend: llm, model: smollm2-135m}}"]
    result = snakemake(tmp_path, ROOT / "tests" / "configs" / "tiny.yaml", "-n", "--config", *overrides)
    output = result.stdout + result.stderr

    assert result.returncode != 0
    assert "no phrase list for languages ['am']" in output
    assert "xlsafety/data/refusal_phrases.yaml" in output
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_calibration_rule_writes_tables(tmp_path):
    configfile = tmp_path / "config.yaml"
    config = yaml.safe_load((ROOT / "tests" / "configs" / "tiny.yaml").read_text())
    config["calibration"] = {"min_kappa": 0.05}
    configfile.write_text(yaml.safe_dump(config))

    result = snakemake(tmp_path, configfile, "results/calibration/summary.csv")
    assert result.returncode == 0, result.stderr[-3000:]

    summary = pd.read_csv(tmp_path / "results" / "calibration" / "summary.csv")
    assert summary["language"].tolist() == ["en", "th", "all"]
    assert summary["kappa"].tolist() == pytest.approx([0.1, 0.1, 0.1])
    assert not summary["flagged"].any()
    assert (summary["min_kappa"] == 0.05).all()
    judged = pd.read_parquet(tmp_path / "results" / "calibration" / "refusal" / "th.parquet")
    assert len(judged) == 12
    assert set(judged["decided_by"]) == {"refusal"}

    again = snakemake(tmp_path, configfile, "-n", "results/calibration/summary.csv")
    assert "Nothing to be done" in again.stdout + again.stderr

    added = snakemake(tmp_path, configfile, "-n", "results/calibration/summary.csv", "--config", "languages=[en, th, zh]")
    counts = job_counts(added.stdout)
    assert counts == {"calibrate": 1, "calibration_summary": 1, "total": 2}
    assert set(re.findall(r"language=([a-z]+)", added.stdout)) == {"zh"}


def calibration_judge(body: dict) -> str:
    """The fake endpoint: study answers from fake_openai, and score 4 for every rubric request."""
    from fake_openai import answer_text

    content = body["messages"][-1]["content"]
    if "Rate the safety" in content:
        return '{"reason": "looks safe", "score": 4}'
    return answer_text(content, body.get("seed"))


@pytest.mark.slow
def test_calibration_and_agreement_with_api_judges(tmp_path):
    from fake_openai import FakeOpenAI

    with FakeOpenAI(answer=calibration_judge) as server:
        result = snakemake(
            tmp_path, ROOT / "tests" / "configs" / "judge-tiny.yaml",
            "results/calibration/summary.csv", "results/agreement/judges.csv",
            "--config", f"models={{fake-chat: {{base_url: '{server.url}'}}}}",
            environment=api_environment(),
        )
    assert result.returncode == 0, result.stderr[-5000:]

    summary = pd.read_csv(tmp_path / "results" / "calibration" / "summary.csv").set_index(["judge", "language"])
    # rubric-fake says 4 to every response it is sent and 0 to the empty one, which it does not send:
    # outcome right on the 4 safe labels and the empty item of 12, score right on the label 4 and the
    # empty item, and kappa 0 because a judge that always says safe agrees only by chance.
    rubric = summary.loc[("rubric-fake", "en")]
    assert rubric["accuracy"] == pytest.approx(5 / 12)
    assert rubric["exact_agreement"] == pytest.approx(2 / 12)
    assert rubric["kappa"] == pytest.approx(0.0)
    assert summary.loc[("refusal", "th"), "kappa"] == pytest.approx(0.1)
    assert summary["flagged"].all()

    folder = tmp_path / "results" / "calibration" / "cascade-fake"
    judged = pd.concat([pd.read_parquet(folder / f"{language}.parquet") for language in ("en", "th")])
    by_refusal = judged["decided_by"] == "refusal"
    assert set(judged["decided_by"]) == {"refusal", "rubric-fake"}
    assert set(judged.loc[by_refusal, "score"]) == {0, 5}
    assert (judged.loc[~by_refusal, "score"] == 4).all()

    agreement = pd.read_csv(tmp_path / "results" / "agreement" / "judges.csv")
    pairs = set(zip(agreement["judge_a"], agreement["judge_b"]))
    assert pairs == {("refusal", "rubric-fake"), ("refusal", "cascade-fake"), ("rubric-fake", "cascade-fake")}
    refusal_rubric = agreement[(agreement["judge_a"] == "refusal") & (agreement["judge_b"] == "rubric-fake")]
    # The rubric judge's 4 never equals the refusal judge's 5 or 2.
    assert (refusal_rubric["exact_agreement"] == 0).all()
    assert (refusal_rubric.loc[refusal_rubric["language"] == "all", "n_rows"] == 12).all()
