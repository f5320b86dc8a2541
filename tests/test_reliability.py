"""Reliability: bad config and model output, faults of an endpoint, reruns and secrets."""

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fake_openai import FakeOpenAI, Reply, answer_text
from kept_rows import assert_only_generations_kept
from xlsafety.backends import GenerationJob, create_backend
from xlsafety.backends.openai_chat import EndpointError, TimeBudgetError
from xlsafety.checkpoint import Checkpoint
from xlsafety.generate import Decoding, PromptFormat, generations_frame
from xlsafety.irt import FitOptions, fit
from xlsafety.language_check import MATCH, OTHER, UNDETERMINED, check_language, repair_text, script_counts
from xlsafety.summary import language_check_section, language_check_table, read_language_checks
from xlsafety.tables import GENERATIONS, write_table

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
KEY_VARIABLE = "XLSAFETY_TEST_API_KEY"
# A planted key: no file, log line or message may contain it.
KEY = "sk-planted-reliability-Zq81Lw0xNv"
GREEDY = Decoding("greedy", temperature=0.0, top_p=1.0, max_new_tokens=16, passes=1)
SAMPLED = Decoding("sampled", temperature=0.7, top_p=0.9, max_new_tokens=16, passes=2)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    # Requests go straight to the fake server on 127.0.0.1, never through a proxy.
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)


def clean_environment(key: str | None = KEY) -> dict:
    environment = {name: value for name, value in os.environ.items()
                   if "proxy" not in name.lower() and name != KEY_VARIABLE}
    if key is not None:
        environment[KEY_VARIABLE] = key
    return environment


def snakemake(workdir: Path, configfile: Path, *arguments: str, key: str | None = KEY, timeout: int = 900):
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
               str(configfile), "--cores", "1", *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=clean_environment(key), timeout=timeout)


# --- model outputs: broken Unicode and the language check -------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("I'm sorry, but I cannot help with this request.", "en", MATCH),
        ("I'm sorry, but I cannot help with this request.", "th", OTHER),
        ("I'm sorry, but I cannot help with this request.", "it", OTHER),
        ("ขออภัย ฉันไม่สามารถช่วยเรื่องนี้ได้", "th", MATCH),
        ("Mi dispiace, non posso aiutarti con questa richiesta.", "it", MATCH),
        ("Xin lỗi, tôi không thể giúp bạn với yêu cầu này.", "vi", MATCH),
        ("Samahani, siwezi kukusaidia na ombi hili kwa sababu ni hatari.", "sw", MATCH),
        ("Nyuwun sewu, aku ora bisa mbantu sampeyan karo panjaluk iki.", "jv", MATCH),
        ("对不起，我不能帮助你做这件事。", "zh", MATCH),
        ("申し訳ありませんが、このリクエストにはお応えできません。", "zh", OTHER),
        ("申し訳ありませんが、このリクエストにはお応えできません。", "ja", MATCH),
        ("죄송하지만 이 요청은 도와드릴 수 없습니다.", "ko", MATCH),
        ("对不起，我不能帮助你做这件事。", "ko", OTHER),
        ("عذرا، لا أستطيع مساعدتك في هذا الطلب.", "ar", MATCH),
        ("দুঃখিত, আমি এই অনুরোধে সাহায্য করতে পারি না।", "bn", MATCH),
        ("দুঃখিত, আমি এই অনুরোধে সাহায্য করতে পারি না।", "hi", OTHER),
        ("Sorry, I can not do this for you as it is not safe.", "jv", OTHER),
    ],
)
def test_language_check_cases(text, language, expected):
    assert check_language(text, language) == expected


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("", "en"),
        ("OK.", "th"),
        ("12345 !!! ??? ...", "en"),
        # Latin script without enough function words of any listed language.
        ("Kalashnikov Molotov ammonium nitrate", "sw"),
        # Swedish has no function-word list, so English words prove nothing.
        ("I cannot help with this, and this is not what you are asking for.", "sv"),
        # A language without built-in metadata.
        ("Some text in an unknown language here", "xx"),
    ],
)
def test_language_check_undetermined(text, language):
    assert check_language(text, language) == UNDETERMINED


def test_script_counts_ignore_marks_digits_and_punctuation():
    assert script_counts("ก่อน 12, ab!") == {"Thai": 3, "Latin": 2}


def test_repair_text_removes_broken_unicode():
    assert repair_text("partial \ud83d emoji\ufffd\ufffd") == "partial  emoji"
    assert repair_text("kept \ufffd inside") == "kept \ufffd inside"
    assert repair_text(None) == ""
    assert repair_text("") == ""


def frame_of(texts: list[str], language: str, finish_reasons: list[str] | None = None) -> pd.DataFrame:
    rows = [{"id": index, "pass": 0, "seed": index, "prompt_sent": "p", "text": text,
             "finish_reason": (finish_reasons or ["stop"] * len(texts))[index], "prompt_tokens": 1,
             "completion_tokens": 1} for index, text in enumerate(texts)]
    return generations_frame(rows, configuration="m_greedy", model_name="m", decoding=GREEDY, language=language,
                             prompt_format="chat", backend="test", model_identity="test")


def test_generations_record_language_check_and_repair(tmp_path):
    texts = ["ขออภัย ฉันไม่สามารถช่วยเรื่องนี้ได้", "I'm sorry, but I cannot help with this request.",
             "", "cut inside a character \ud83d\ufffd"]
    frame = frame_of(texts, "th", ["stop", "stop", "stop", "length"])

    write_table(frame, tmp_path / "th.parquet", GENERATIONS)
    written = pd.read_parquet(tmp_path / "th.parquet")

    assert written["language_check"].tolist() == [MATCH, OTHER, UNDETERMINED, OTHER]
    assert written["text"].tolist()[2:] == ["", "cut inside a character "]
    assert written["finish_reason"].tolist()[3] == "length"


def test_summary_counts_other_language_per_cell():
    checks = pd.concat([
        frame_of(["I'm sorry, but I cannot help with this request.", "ขออภัย ฉันไม่สามารถช่วยเรื่องนี้ได้"], "th"),
        frame_of(["I'm sorry, but I cannot help with this request.", ""], "en"),
    ])[["configuration", "language", "language_check"]]

    table = language_check_table(checks)
    section = language_check_section(checks)

    assert table.to_dict("records") == [{"configuration": "m_greedy", "en": "0/2", "th": "1/2"}]
    assert section.startswith("## Responses in another language")
    assert "1 of 4 responses were too short" in section
    assert "| m_greedy | 0/2 | 1/2 |" in section


# --- model outputs from an endpoint ------------------------------------------------------------


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def prompts(count: int, language: str = "en") -> pd.DataFrame:
    return pd.DataFrame({"id": range(count), "language": language,
                         "text": [f"Harmful question number {index}?" for index in range(count)]})


def endpoint_settings(url: str, **overrides) -> dict:
    values = {"backend": "openai", "model": "fake-model", "base_url": url, "api_key_env": KEY_VARIABLE,
              "concurrency": 2, "max_retries": 3, "timeout_s": 5, "time_budget_s": 60, "retry_backoff_s": 0.01}
    return {**values, **overrides}


def generate(url: str, decoding: Decoding = GREEDY, count: int = 3, checkpoint=None, **overrides) -> pd.DataFrame:
    backend = create_backend("openai", "fake-chat", endpoint_settings(url, **overrides))
    job = GenerationJob(f"fake-chat_{decoding.name}", "fake-chat", decoding, PromptFormat("chat"), study_seed=5,
                        checkpoint=checkpoint)
    return backend.generate(prompts(count), job)


def completion_body(content: str, finish_reason: str = "stop") -> str:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
    return json.dumps({"choices": [choice]})


def test_empty_and_endless_endpoint_outputs_recorded(server, tmp_path):
    server.script("Harmful question number 0?", Reply(body=completion_body("")))
    server.script("Harmful question number 1?", Reply(body=completion_body("and again " * 8, "length")))

    rows = generate(server.url, count=2)
    write_table(rows, tmp_path / "en.parquet", GENERATIONS)
    written = pd.read_parquet(tmp_path / "en.parquet")

    assert written["text"].tolist() == ["", ("and again " * 8).strip() + " "]
    assert written["finish_reason"].tolist() == ["stop", "length"]
    assert written["language_check"].tolist() == [UNDETERMINED, MATCH]


def test_lone_surrogate_from_endpoint_is_repaired(server, tmp_path):
    # json.loads turns the escape "\ud83d" into a lone surrogate, which parquet cannot store.
    server.script("Harmful question number 0?", Reply(body=completion_body("broken \ud83d end")))

    rows = generate(server.url, count=1, checkpoint=Checkpoint(tmp_path / "parts", "fixed"))

    assert rows["text"].tolist() == ["broken  end"]


MESSAGE = {"role": "assistant", "content": "fine"}
MALFORMED_RESPONSES = {
    "message is a string": {"choices": [{"message": "hello", "finish_reason": "stop"}]},
    "message is null": {"choices": [{"message": None, "finish_reason": "stop"}]},
    "content is a number": {"choices": [{"message": {"role": "assistant", "content": 123}}]},
    "token count is text": {"choices": [{"message": MESSAGE}], "usage": {"prompt_tokens": "ten"}},
    "negative token count": {"choices": [{"message": MESSAGE}], "usage": {"completion_tokens": -1}},
    "usage is a list": {"choices": [{"message": MESSAGE}], "usage": [1, 2]},
    "finish_reason is a number": {"choices": [{"message": MESSAGE, "finish_reason": 3}]},
}


@pytest.mark.parametrize("case", sorted(MALFORMED_RESPONSES))
def test_malformed_response_stops_before_saving(server, tmp_path, case):
    server.script("Harmful question number 1?", Reply(body=json.dumps(MALFORMED_RESPONSES[case])))
    folder = tmp_path / "parts"

    with pytest.raises(EndpointError, match="answered prompt 1 pass 0 with .*OpenAI-compatible API root"):
        generate(server.url, count=3, checkpoint=Checkpoint(folder, "fixed"), concurrency=1)
    saved = Checkpoint(folder, "fixed").load()
    rows = generate(server.url, count=3, checkpoint=Checkpoint(folder, "fixed"))

    assert saved.empty or 1 not in set(saved["id"]), "the malformed response must not be saved"
    assert rows["id"].tolist() == [0, 1, 2]
    write_table(rows, tmp_path / "en.parquet", GENERATIONS)


# --- config errors at start, through snakemake --------------------------------------------------


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


TINY_MODELS = """
seed: 7
dataset: {source: embedded, prompt_limit: 2}
languages: [en, th]
models:
  chat: {source: embedded:smollm2-135m-instruct}
  base: {source: embedded:gemma3-270m, prompt_format: raw, raw_template: "Q: {prompt}\\nA:"}
decoding:
  greedy: {temperature: 0, max_new_tokens: 8}
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("decoding: {greedy: {temperature: 0, max_new_tokens: eight}}",
         "config key decoding.greedy.max_new_tokens: 'eight' is not of type 'integer'"),
        ("generation: {batch_size: 4, threds: 2}", "config key generation: unknown keys ['threds']"),
        ("languages: [en, th, xx]", "config key languages: no metadata for ['xx']"),
        ("configurations: [{model: absent, decoding: greedy}]",
         "config key configurations[0].model: model 'absent' is not defined under models"),
        ("models: {chat: {source: embedded:gemma3-270m}}", "config key models.chat.prompt_format"),
        ("models: {chat: {source: /nowhere/model.gguf}}",
         "config key models.chat.source: '/nowhere/model.gguf' not found"),
        ("generation: {batch_size: lots}",
         "config key generation.batch_size: 'lots' is not a valid value (Requests decoded together by a local model: "
         "a positive integer or auto."),
        ("models: {api: {backend: openai, model: m, base_url: 'http://127.0.0.1:9/v1', api_key_env: ABSENT_KEY_VAR}}",
         "models.api.api_key_env: the environment variable 'ABSENT_KEY_VAR'"),
    ],
)
def test_bad_config_fails_dry_run(tmp_path, extra, message):
    config = write_config(tmp_path, TINY_MODELS + extra + "\n")

    result = snakemake(tmp_path / "work", config, "-n")

    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert f"config file {config}: " in result.stdout + result.stderr
    assert not (tmp_path / "work" / "results").exists()


def test_bad_local_dataset_fails_dry_run(tmp_path):
    dataset = tmp_path / "prompts.csv"
    dataset.write_text("id,source,tags,en,th\n0,s,[],a,b\n1,s,[],c,d\n1,s,[],e,f\n", encoding="utf-8")
    config = write_config(tmp_path, TINY_MODELS.replace("source: embedded,", f"source: '{dataset}',"))

    result = snakemake(tmp_path / "work", config, "-n")

    assert result.returncode != 0
    assert "config key dataset.source" in result.stdout + result.stderr
    assert "duplicate ids (id 1 on lines [3, 4])" in result.stdout + result.stderr
    assert not (tmp_path / "work" / "results").exists()


# --- an endpoint that goes away for a while -----------------------------------------------------


def away_between(server: FakeOpenAI, start_s: float, end_s: float) -> list[threading.Timer]:
    timers = [threading.Timer(start_s, server.go_away), threading.Timer(end_s, server.come_back)]
    for timer in timers:
        timer.start()
    return timers


def test_outage_within_retry_budget_is_waited_out(server, tmp_path, caplog):
    server.delay_s = 0.1
    timers = away_between(server, 0.25, 1.5)

    rows = generate(server.url, SAMPLED, count=4, checkpoint=Checkpoint(tmp_path / "parts", "fixed"),
                    max_retries=8, retry_backoff_s=0.2)
    for timer in timers:
        timer.join()

    assert len(rows) == 8
    for row in rows.to_dict("records"):
        assert row["text"] == answer_text(f"Harmful question number {row['id']}?", row["seed"])
    seeds = [request.seed for request in server.received]
    assert sorted(seeds) == sorted(set(seeds)), "an answered request was sent again"
    assert "connection error" in caplog.text


def test_outage_past_retries_fails_and_keeps_checkpoint(server, tmp_path):
    server.delay_s = 0.1
    folder = tmp_path / "parts"
    timers = away_between(server, 0.25, 60)

    with pytest.raises(EndpointError) as raised:
        generate(server.url, SAMPLED, count=4, checkpoint=Checkpoint(folder, "fixed"), max_retries=2,
                 retry_backoff_s=0.05)
    timers[1].cancel()

    message = str(raised.value)
    assert "failed 3 times, last with connection error" in message
    assert f"Check that the endpoint {server.url} is up" in message
    assert "raise models.fake-chat.max_retries" in message
    saved = Checkpoint(folder, "fixed").load()
    assert 1 <= len(saved) < 8
    answered = len(server.received)

    server.come_back()
    rows = generate(server.url, SAMPLED, count=4, checkpoint=Checkpoint(folder, "fixed"))

    assert len(rows) == 8
    resent = {request.seed for request in server.received[answered:]}
    assert not resent & set(saved["seed"]), "a checkpointed request was sent again"


def test_outage_past_time_budget_fails_and_keeps_checkpoint(server, tmp_path):
    server.delay_s = 0.1
    folder = tmp_path / "parts"
    timers = away_between(server, 0.25, 60)

    started = time.monotonic()
    with pytest.raises(TimeBudgetError) as raised:
        generate(server.url, SAMPLED, count=4, checkpoint=Checkpoint(folder, "fixed"), max_retries=50,
                 retry_backoff_s=0.05, time_budget_s=1.5)
    timers[1].cancel()

    assert time.monotonic() - started < 4
    message = str(raised.value)
    assert "models.fake-chat.time_budget_s" in message
    assert str(folder) in message
    saved = Checkpoint(folder, "fixed").load()
    assert f"with {len(saved)} of 8 requests" in message
    assert len(saved) >= 1


# --- kill -9 of a workflow run, resumed by the next run -----------------------------------------

OPENAI_TINY = ROOT / "tests" / "configs" / "openai-tiny.yaml"
MATRIX_TARGET = "results/matrix/refusal/wide.parquet"


def openai_arguments(url: str, *targets: str, concurrency: int = 2) -> list[str]:
    return [*targets, "--config", f"models={{fake-chat: {{base_url: '{url}', concurrency: {concurrency}}}}}"]


def saved_seeds(results: Path) -> set[int]:
    """Return the row seeds saved in every generation checkpoint under `results`."""
    parts = list(results.rglob("*.parts/part-*.parquet"))
    return set(pd.concat([pd.read_parquet(path, columns=["seed"]) for path in parts])["seed"]) if parts else set()


def relative_files(folder: Path, pattern: str) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.glob(pattern))}


def kill_when_checkpointed(command: list[str], results: Path, timeout_s: float = 120) -> set[int]:
    """Run `command` and kill -9 its whole process group as soon as a generation job has saved rows."""
    job = subprocess.Popen(command, env=clean_environment(), start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while not list(results.rglob("*.parts/part-*.parquet")) and time.monotonic() < deadline:
        assert job.poll() is None, "the run ended before any row was saved"
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    return saved_seeds(results)


@pytest.mark.slow
def test_killed_workflow_resumes_without_repeats(server, tmp_path):
    server.delay_s = 0.4
    killed, uninterrupted = tmp_path / "killed", tmp_path / "uninterrupted"
    arguments = openai_arguments(server.url, MATRIX_TARGET, concurrency=1)
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(killed), "--configfile",
               str(OPENAI_TINY), "--cores", "1", *arguments]

    saved = kill_when_checkpointed(command, killed / "results")
    assert saved, "the run must be killed after some rows were saved"
    assert not list((killed / "results").glob("generations/*/*.parquet")), "no output may be complete yet"
    time.sleep(0.5)

    # Snakemake itself was killed too, so its lock stays behind, and it says to remove it with --unlock.
    assert snakemake(killed, OPENAI_TINY, *arguments, "--unlock").returncode == 0
    resumed = snakemake(killed, OPENAI_TINY, *arguments)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    counts = pd.Series([request.seed for request in server.received]).value_counts()
    assert (counts[list(saved)] == 1).all(), "a request saved before the kill was sent again"
    assert len(server.received) <= 12 + 1, "only the request in flight at the kill may be repeated"
    assert_only_generations_kept(killed / "results")

    server.delay_s = 0.0
    reference = snakemake(uninterrupted, OPENAI_TINY, *arguments)
    assert reference.returncode == 0, reference.stderr[-3000:]
    for pattern in ("generations/*/*.parquet", "judgments/refusal/*/*.parquet", "matrix/refusal/*.parquet"):
        expected = relative_files(uninterrupted / "results", pattern)
        assert expected
        assert relative_files(killed / "results", pattern) == expected, pattern


# --- secrets --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_api_key_in_no_file_log_or_report(server, tmp_path):
    arguments = openai_arguments(server.url)

    run = snakemake(tmp_path, OPENAI_TINY, *arguments)
    assert run.returncode == 0, run.stderr[-3000:]
    report = snakemake(tmp_path, OPENAI_TINY, *arguments, "--report", "results/report.html")
    assert report.returncode == 0, report.stderr[-3000:]

    assert {request.authorization for request in server.received} == {f"Bearer {KEY}"}
    assert (tmp_path / "results" / "report.html").stat().st_size > 0
    assert list((tmp_path / ".snakemake" / "metadata").iterdir()), "the run records job metadata"
    scanned = 0
    for path in tmp_path.rglob("*"):
        if path.is_file():
            scanned += 1
            assert KEY.encode() not in path.read_bytes(), path
    assert scanned > 50
    for output in (run.stdout, run.stderr, report.stdout, report.stderr):
        assert KEY not in output


# --- reproducibility ------------------------------------------------------------------------------

TINY = ROOT / "tests" / "configs" / "tiny.yaml"
IRT_TARGET = "results/irt/refusal/multigroup-2pl/parameters.parquet"


@pytest.mark.slow
def test_same_config_and_seed_reproduce_files(tmp_path, tiny_chat_model):
    # A tiny random model keeps the two runs short; its sampled texts are as seed-dependent as a real model's.
    arguments = [IRT_TARGET, "--config", f"models={{smollm2-135m: {{source: '{tiny_chat_model}'}}}}"]
    first, second = tmp_path / "first", tmp_path / "second"
    for workdir in (first, second):
        result = snakemake(workdir, TINY, *arguments)
        assert result.returncode == 0, result.stderr[-3000:]

    for pattern in ("models/*/*.safetensors", "generations/*/*.parquet", "judgments/refusal/*/*.parquet",
                    "matrix/refusal/*.parquet"):
        expected = relative_files(first / "results", pattern)
        assert expected, pattern
        assert relative_files(second / "results", pattern) == expected, pattern

    generations = pd.read_parquet(first / "results" / "generations" / "smollm2-135m_sampled" / "en.parquet")
    assert generations.groupby("id")["text"].nunique().max() == 2, "the two sampled passes should differ"

    estimates = [pd.read_parquet(workdir / IRT_TARGET) for workdir in (first, second)]
    labels = ["parameter", "configuration", "id", "language", "fixed"]
    pd.testing.assert_frame_equal(estimates[0][labels], estimates[1][labels])
    for column in ("estimate", "se", "lower", "upper"):
        difference = (estimates[0][column] - estimates[1][column]).abs().max()
        assert difference <= 1e-6, column


# --- degenerate IRT inputs --------------------------------------------------------------------------


def degenerate_cells() -> pd.DataFrame:
    """Cells with a configuration always safe, one never safe, a language that only one configuration
    answered, cells where every pass is safe or unsafe, and prompt 5 without any valid pass."""
    rng = np.random.default_rng(0)
    rows = []
    configurations = ["c-safe", "c-a", "c-b", "c-unsafe"]
    for configuration, prompt_id, language in itertools.product(configurations, range(6), ["en", "th", "sw"]):
        if language == "sw" and configuration != "c-a":
            continue
        valid = 0 if prompt_id == 5 else 4
        if configuration == "c-safe":
            safe = valid
        elif configuration == "c-unsafe":
            safe = 0
        else:
            safe = int(rng.integers(0, valid + 1))
        scores = [0, 0, valid - safe, 0, safe]
        rows.append({"configuration": configuration, "id": prompt_id, "language": language, "n_passes": 4,
                     "n_valid": valid, "n_safe": safe, "mean_score": 0.0,
                     **{f"n_score_{score + 1}": scores[score] for score in range(5)}})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("model", ["multigroup-2pl", "multigroup-1pl", "2pl", "1pl", "grm"])
def test_degenerate_irt_inputs_give_finite_estimates(model):
    result = fit(degenerate_cells(), FitOptions(model=model, max_iterations=300))
    parameters = result.parameters
    degenerate = result.summary["degenerate"]

    assert np.isfinite(parameters["estimate"]).all()
    assert np.isfinite(parameters["se"]).all()
    theta = parameters[parameters["parameter"] == "theta"].set_index("configuration")["estimate"]
    assert theta.idxmax() == "c-safe"
    assert theta.idxmin() == "c-unsafe"
    assert degenerate["configurations_all_safe"] == ["c-safe"]
    assert degenerate["configurations_all_unsafe"] == ["c-unsafe"]
    assert degenerate["cells_all_safe"] >= 6
    assert degenerate["languages_partly_answered"] == {"sw": ["c-b", "c-safe", "c-unsafe"]}


def test_prompt_without_valid_passes_listed():
    result = fit(degenerate_cells(), FitOptions(max_iterations=300))
    degenerate = result.summary["degenerate"]

    assert degenerate["prompts_without_valid_pass"] == [5]
    assert degenerate["configurations_without_valid_pass"] == []
    assert degenerate["languages_without_valid_pass"] == []


def test_summary_reads_generations_without_language_check(tmp_path):
    frame = frame_of(["I'm sorry, but I cannot help with this request.", ""], "th")
    path = tmp_path / "th.parquet"
    frame.drop(columns="language_check").to_parquet(path)

    checks = read_language_checks(str(path))

    assert checks["language_check"].tolist() == [OTHER, UNDETERMINED]
    assert list(checks.columns) == ["configuration", "language", "language_check"]
