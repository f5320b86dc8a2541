"""Importing already-judged passes in long format: column names, validation, downloads and the workflow."""

import hashlib
import http.server
import re
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml

from xlsafety.errors import ConfigError, DatasetError
from xlsafety.languages import known_languages
from xlsafety.sources import prepare_source, reanalysis
from xlsafety.sources.reanalysis import (
    NAMES_CACHE,
    configuration_id,
    import_study,
    read_judged,
    resolve_columns,
    study_names,
)
from xlsafety.sources.simulation import SimulationSettings, simulate_study
from xlsafety.tables import JUDGMENTS, PROMPTS

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SCHEMA = yaml.safe_load((ROOT / "config" / "schema" / "config.schema.yaml").read_text())
COLUMN_DEFAULTS = {
    field: entry["default"]
    for field, entry in SCHEMA["properties"]["source"]["properties"]["reanalysis"]["properties"]["columns"][
        "properties"].items()
}
KNOWN = set(known_languages())
LANGUAGES = ["en", "th", "sw"]
TAKERS = {"greedy": "GPT-4o_Greedy", "low-creativity": "GPT-4o_Low_Creativity",
          "standard-real": "Claude 3.5/Sonnet_Standard_Real", "high-risk": "Qwen2.5_High_Risk", "chaos": "Qwen2.5_Chaos"}


def released_frame(configurations=5, prompts=8, passes=3, seed=5) -> pd.DataFrame:
    """Judged passes in the released long format, with the column names of the reference study's files."""
    settings = SimulationSettings(configurations=configurations, prompts=prompts, passes=passes, anchors=0,
                                  tau_scale=0.5, missing_share=0.0, invalid_share=0.05, seed=seed)
    study = simulate_study(settings, LANGUAGES)
    rows = study.judgments.merge(study.prompts[["id", "language", "text", "tags"]], on=["id", "language"])
    takers = rows["configuration"].map(lambda name: f"{TAKERS[name.split('_')[1]]}-{name.split('_')[0][-2:]}")
    return pd.DataFrame({
        "Model_Config": takers.str.replace(r"_(.*)-(\d+)$", r"-\2_\1", regex=True),
        "prompt_id": rows["id"],
        "lang": rows["language"].str.upper(),
        "sample": rows["pass"],
        "judge_score": rows["score"].astype("int64"),
        "prompt_text": rows["text"],
        "tags": rows["tags"].map(str),
        "reason": "judged",
    })


def write_released(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_csv(path, index=False)
    return path


def settings_for(path, **changes) -> dict:
    return {"path": None if path is None else str(path), "sha256": None, "format": "auto", "judge": "released", "languages": None,
            "columns": dict(COLUMN_DEFAULTS), **changes}


def reanalysis_config(path, **changes) -> dict:
    return {
        "seed": 1, "languages": ["en", "zh"], "reference_language": "en", "language_metadata": {},
        "irt": {"anchors": []}, "source": {"kind": "reanalysis", "reanalysis": settings_for(path, **changes)},
    }


def test_columns_resolved_from_variants_ignoring_case():
    header = ["Model_Config", "PROMPT_ID", "lang", "sample", "judge_score", "prompt_text", "other"]
    resolved = resolve_columns(header, COLUMN_DEFAULTS, "judged.csv")

    assert resolved == {"configuration": "Model_Config", "id": "PROMPT_ID", "language": "lang", "pass": "sample",
                        "score": "judge_score", "prompt": "prompt_text"}


def test_configured_column_name_wins():
    header = ["taker", "qid", "language", "pass", "score", "prompt", "score_v2"]
    mapping = {**COLUMN_DEFAULTS, "id": "qid", "score": ["score_v2", "score"]}

    assert resolve_columns(header, mapping, "judged.csv")["score"] == "score_v2"
    assert resolve_columns(header, mapping, "judged.csv")["id"] == "qid"


def test_missing_column_names_the_config_key():
    header = ["taker", "id", "language", "pass", "prompt"]

    with pytest.raises(DatasetError, match=r"judged.csv: no column for score .*source\.reanalysis\.columns\.score"):
        resolve_columns(header, COLUMN_DEFAULTS, "judged.csv")


@pytest.mark.parametrize(
    ("name", "identifier"),
    [
        ("GPT-4o_Standard_Real", "gpt-4o_standard-real"),
        ("claude-3.5-sonnet_Chaos", "claude-3.5-sonnet_chaos"),
        ("Qwen/Qwen2.5 7B_High_Risk", "qwen-qwen2.5-7b_high-risk"),
        ("gpt4o", "gpt4o_default"),
    ],
)
def test_configuration_id(name, identifier):
    assert configuration_id(name) == identifier


def test_configuration_id_needs_a_model():
    with pytest.raises(ValueError, match="before its first underscore"):
        configuration_id("_chaos")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_import_writes_judgments_and_prompts(tmp_path, suffix):
    frame = released_frame()
    path = write_released(frame, tmp_path / f"judged{suffix}")
    judgments, prompts, configurations = import_study(path, settings_for(path), LANGUAGES, KNOWN)

    assert list(judgments.columns) == JUDGMENTS.names
    assert len(judgments) == len(frame)
    assert judgments["judge"].unique().tolist() == ["released"]
    assert (judgments["safe"].dropna() == (judgments.loc[judgments["score"] > 0, "score"] >= 4)).all()
    assert judgments.loc[judgments["score"] == 0, "safe"].isna().all()
    assert set(judgments["configuration"]) == {"gpt-4o-00_greedy", "gpt-4o-00_low-creativity",
                                               "claude-3.5-sonnet-00_standard-real", "qwen2.5-00_high-risk",
                                               "qwen2.5-00_chaos"}
    assert list(prompts.columns) == PROMPTS.names
    assert len(prompts) == 8 * 3
    assert prompts.loc[prompts["id"] == 0, "tags"].iloc[0] == ["Violence & incitement"]
    assert configurations["rows"].sum() == len(frame)


def test_import_keeps_only_studied_languages(tmp_path):
    path = write_released(released_frame(), tmp_path / "judged.csv")
    judgments, prompts, _ = import_study(path, settings_for(path), ["en", "sw"], KNOWN)

    assert set(judgments["language"]) == {"en", "sw"}
    assert set(prompts["language"]) == {"en", "sw"}


def error_for(tmp_path, change) -> str:
    frame = released_frame()
    change(frame)
    path = write_released(frame, tmp_path / "bad.csv")
    with pytest.raises(DatasetError) as caught:
        read_judged(path, settings_for(path), LANGUAGES, KNOWN)
    return str(caught.value)


def test_unknown_language_named_with_row_and_column(tmp_path):
    message = error_for(tmp_path, lambda frame: frame.__setitem__("lang", frame["lang"].where(frame.index != 6, "XX")))

    assert "bad.csv: column language (language or lang or language_code)" in message
    assert "unknown language in data rows [7]" in message


def test_score_out_of_range_named(tmp_path):
    def change(frame):
        frame.loc[[2, 40], "judge_score"] = [6, -1]

    message = error_for(tmp_path, change)

    assert "column score" in message
    assert "a score outside 0..5 in data rows [3, 41]" in message
    assert "['6', '-1']" in message


def test_non_integer_score_named(tmp_path):
    message = error_for(tmp_path, lambda frame: frame.__setitem__("judge_score", frame["judge_score"].astype(object)
                                                                     .where(frame.index != 0, "safe")))

    assert "column score" in message
    assert "not an integer in data rows [1]" in message


def test_duplicate_pass_named(tmp_path):
    def change(frame):
        frame.loc[1, "sample"] = frame.loc[0, "sample"]

    message = error_for(tmp_path, change)

    assert "repeat a (configuration, id, language, pass) in data rows [1, 2]" in message


def test_missing_value_named(tmp_path):
    def change(frame):
        frame.loc[4, "prompt_text"] = ""
        frame.loc[9, "prompt_text"] = "  "

    message = error_for(tmp_path, change)

    assert "column prompt (prompt or prompt_text or question or text)" in message
    assert "a missing value in data rows [5, 10]" in message


def test_missing_value_in_parquet_named(tmp_path):
    frame = released_frame()
    frame["prompt_id"] = frame["prompt_id"].astype("Int64")
    frame.loc[3, "prompt_id"] = pd.NA
    path = write_released(frame, tmp_path / "bad.parquet")

    with pytest.raises(DatasetError, match=r"bad.parquet: column id .* missing value in data rows \[4\]"):
        read_judged(path, settings_for(path), LANGUAGES, KNOWN)


def test_many_bad_rows_are_counted(tmp_path):
    message = error_for(tmp_path, lambda frame: frame.__setitem__("judge_score", 9))

    assert f"and {len(released_frame()) - 10} more" in message


def test_names_are_read_once_and_cached(tmp_path, monkeypatch):
    path = write_released(released_frame(), tmp_path / "judged.csv")
    names = study_names(path, settings_for(path), tmp_path)

    assert sorted(names["language"]) == ["EN", "SW", "TH"]
    assert names["configuration"]["Qwen2.5-00_Chaos"] == 1
    assert (tmp_path / NAMES_CACHE).is_file()

    with monkeypatch.context() as patch:
        patch.setattr(reanalysis, "read_columns", lambda *arguments: pytest.fail("the file was read again"))
        assert study_names(path, settings_for(path), tmp_path) == names

    frame = released_frame()
    frame.loc[0, "lang"] = "IT"
    write_released(frame, path)
    assert "IT" in study_names(path, settings_for(path), tmp_path)["language"]


def test_prepare_takes_languages_and_configurations_from_file(tmp_path):
    path = write_released(released_frame(), tmp_path / "judged.csv")
    config = reanalysis_config("judged.csv")
    source = prepare_source(config, tmp_path)

    assert config["languages"] == ["en", "th", "sw"]
    assert source.judge == "released"
    assert source.data_file == str(path)
    assert source.configurations["qwen2.5-00_chaos"]["name"] == "Qwen2.5-00_Chaos"


def test_prepare_selects_configured_languages(tmp_path):
    write_released(released_frame(), tmp_path / "judged.csv")
    config = reanalysis_config("judged.csv", languages=["sw", "en"])
    prepare_source(config, tmp_path)

    assert config["languages"] == ["en", "sw"]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"path": None}, ConfigError, "source.reanalysis.path"),
        ({"path": "absent.csv"}, DatasetError, "absent.csv not found"),
        ({"path": "http://127.0.0.1:9/judged.csv"}, ConfigError, "source.reanalysis.sha256"),
        ({"languages": ["en", "zh"]}, ConfigError, "['zh'] have no rows"),
        ({"sha256": "0" * 64}, DatasetError, "does not match source.reanalysis.sha256"),
        ({"format": "auto", "path": "judged.xlsx"}, ConfigError, "source.reanalysis.format"),
    ],
)
def test_prepare_rejects_bad_settings(tmp_path, changes, error, message):
    write_released(released_frame(), tmp_path / "judged.csv")
    (tmp_path / "judged.xlsx").write_bytes(b"")
    config = reanalysis_config(**{"path": "judged.csv", **changes})

    with pytest.raises(error, match=re.escape(message)):
        prepare_source(config, tmp_path)


def test_prepare_names_unknown_language_row(tmp_path):
    frame = released_frame()
    frame.loc[5, "lang"] = "klingon"
    write_released(frame, tmp_path / "judged.csv")

    with pytest.raises(DatasetError, match=r"judged.csv: data row 6, column language .*'klingon' is unknown"):
        prepare_source(reanalysis_config("judged.csv"), tmp_path)


def test_prepare_rejects_clashing_takers(tmp_path):
    frame = released_frame()
    frame.loc[frame["Model_Config"] == "GPT-4o-00_Greedy", "Model_Config"] = "gpt-4o-00_greedy "
    frame.loc[0, "Model_Config"] = "GPT-4o-00_Greedy"
    write_released(frame, tmp_path / "judged.csv")

    with pytest.raises(DatasetError, match="both become configuration 'gpt-4o-00_greedy'"):
        prepare_source(reanalysis_config("judged.csv"), tmp_path)


@pytest.fixture
def served(tmp_path):
    """Serve tmp_path/served over HTTP on 127.0.0.1, and return the base URL."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *arguments, **keywords):
            super().__init__(*arguments, directory=str(folder), **keywords)

        def log_message(self, *arguments):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_source_downloaded_once_and_checked(tmp_path, served):
    folder, base = served
    path = write_released(released_frame(), folder / "judged.parquet")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    workdir = tmp_path / "work"
    workdir.mkdir()

    source = prepare_source(reanalysis_config(f"{base}/judged.parquet", sha256=digest), workdir)
    downloaded = Path(source.data_file)
    assert downloaded.read_bytes() == path.read_bytes()

    path.unlink()
    again = prepare_source(reanalysis_config(f"{base}/judged.parquet", sha256=digest), workdir)
    assert again.data_file == source.data_file


def test_url_source_with_wrong_sha256_rejected(tmp_path, served):
    folder, base = served
    write_released(released_frame(), folder / "judged.csv")

    with pytest.raises(DatasetError, match="does not match the expected"):
        prepare_source(reanalysis_config(f"{base}/judged.csv", sha256="1" * 64), tmp_path)
    assert not list((tmp_path / "results" / "reanalysis").rglob("judged.csv"))


def snakemake(*arguments, workdir: Path, configfile: Path):
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "--cores", "1", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=1800)


def shipped_config(tmp_path: Path, **reanalysis) -> Path:
    config = yaml.safe_load((ROOT / "config" / "reanalysis.yaml").read_text())
    config["source"]["reanalysis"].update(reanalysis)
    config["irt"] = {**config.get("irt", {}), "max_iterations": 300}
    path = tmp_path / "reanalysis.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_dry_run_schedules_only_the_import(tmp_path):
    write_released(released_frame(), tmp_path / "judged.csv")
    configfile = shipped_config(tmp_path, path="judged.csv", sha256=None)

    dry = snakemake("-n", workdir=tmp_path, configfile=configfile)

    assert dry.returncode == 0, dry.stderr[-3000:]
    assert re.search(r"^reanalysis_import\s+1$", dry.stdout, flags=re.M)
    for rule in ("prompts", "prepare_model", "generate", "judge", "translate", "fetch_dataset"):
        assert not re.search(rf"^{rule}\s+\d+$", dry.stdout, flags=re.M)


@pytest.mark.slow
def test_workflow_imports_and_fits(tmp_path):
    frame = released_frame()
    write_released(frame, tmp_path / "judged.csv")
    configfile = shipped_config(tmp_path, path="judged.csv", sha256=None)

    target = "results/irt/released/multigroup-2pl/parameters.csv"
    run = snakemake(target, workdir=tmp_path, configfile=configfile)
    assert run.returncode == 0, run.stderr[-5000:]

    results = tmp_path / "results"
    cells = pd.read_parquet(results / "matrix" / "released" / "cells.parquet")
    assert len(cells) == 5 * 8 * 3
    assert cells["n_passes"].sum() == len(frame)
    assert cells["n_valid"].sum() == (frame["judge_score"] > 0).sum()
    parameters = pd.read_csv(tmp_path / target)
    assert set(parameters.loc[parameters["parameter"] == "theta", "configuration"]) == set(cells["configuration"])
    assert set(parameters["language"].dropna()) == {"th", "sw"}


def test_workflow_stops_on_bad_file(tmp_path):
    frame = released_frame()
    frame.loc[11, "judge_score"] = 7
    write_released(frame, tmp_path / "judged.csv")
    configfile = shipped_config(tmp_path, path="judged.csv", sha256=None)

    run = snakemake("results/matrix/released/cells.parquet", workdir=tmp_path, configfile=configfile)

    assert run.returncode != 0
    log = (tmp_path / "results" / "logs" / "reanalysis" / "import.log").read_text()
    assert "a score outside 0..5 in data rows [12]" in log
    assert not (tmp_path / "results" / "judgments").exists()
