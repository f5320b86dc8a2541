"""The openai backend against a fake OpenAI-compatible server on 127.0.0.1."""

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from fake_openai import FakeOpenAI, Reply, answer_text
from kept_rows import assert_only_generations_kept
from xlsafety.backends import GenerationJob, configuration_pattern, create_backend, endpoint_of
from xlsafety.backends.openai_chat import EndpointError, TimeBudgetError, retry_after_seconds
from xlsafety.checkpoint import Checkpoint
from xlsafety.errors import ConfigError
from xlsafety.generate import Decoding, PromptFormat, row_seed
from xlsafety.study import check_study, fill_defaults
from xlsafety.tables import GENERATIONS, write_table

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema" / "config.schema.yaml").read_text())
KEY_VARIABLE = "XLSAFETY_TEST_API_KEY"
# A planted key: no output, log line or error message may contain it.
KEY = "sk-planted-7fQ2xK9vLm3Rt8Wz"
SAMPLED = Decoding("sampled", temperature=0.7, top_p=0.9, max_new_tokens=16, passes=2, system_prompt="Be safe.")
GREEDY = Decoding("greedy", temperature=0.0, top_p=1.0, max_new_tokens=16, passes=1)


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    # Requests go straight to the fake server on 127.0.0.1, never through a proxy.
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


def prompts(count: int, language: str = "en") -> pd.DataFrame:
    return pd.DataFrame({"id": range(count), "language": language,
                         "text": [f"Harmful question number {index}?" for index in range(count)]})


def settings(url: str, **overrides) -> dict:
    values = {"backend": "openai", "model": "fake-model", "base_url": url, "api_key_env": KEY_VARIABLE,
              "concurrency": 2, "max_retries": 3, "timeout_s": 5, "time_budget_s": 60, "retry_backoff_s": 0.01}
    return {**values, **overrides}


def generate(url: str, decoding: Decoding = SAMPLED, count: int = 3, checkpoint=None, **overrides) -> pd.DataFrame:
    backend = create_backend("openai", "fake-chat", settings(url, **overrides))
    job = GenerationJob("fake-chat_sampled", "fake-chat", decoding, PromptFormat("chat"), study_seed=5,
                        checkpoint=checkpoint)
    return backend.generate(prompts(count), job)


def written(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Write rows through the GENERATIONS schema, as the workflow does, and read them back."""
    write_table(frame, path, GENERATIONS)
    return pd.read_parquet(path)


def test_rows_record_answers_usage_and_endpoint(server, tmp_path):
    rows = written(generate(server.url), tmp_path / "en.parquet")

    assert rows[["id", "pass"]].values.tolist() == [[i, p] for i in range(3) for p in range(2)]
    for row in rows.to_dict("records"):
        assert row["text"] == answer_text(f"Harmful question number {row['id']}?", row["seed"])
        assert row["seed"] == row_seed(5, "fake-chat_sampled", "en", row["id"], row["pass"])
    assert set(rows["finish_reason"]) == {"stop"}
    assert (rows["completion_tokens"] > 0).all()
    assert (rows["prompt_tokens"] > 0).all()
    assert set(rows["backend"]) == {"openai"}
    assert json.loads(rows["model_identity"][0]) == {"base_url": server.url, "model": "fake-model"}
    assert json.loads(rows["prompt_sent"][0]) == [
        {"role": "system", "content": "Be safe."}, {"role": "user", "content": "Harmful question number 0?"},
    ]

    body = server.received[0].body
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == ("fake-model", 0.7, 0.9, 16)
    assert {request.seed for request in server.received} == set(rows["seed"])
    assert {request.authorization for request in server.received} == {f"Bearer {KEY}"}


def test_length_finish_and_missing_usage_give_nulls(tmp_path):
    with FakeOpenAI(usage=False) as server:
        short = Decoding("short", temperature=0.0, top_p=1.0, max_new_tokens=3, passes=1)
        rows = written(generate(server.url, short, count=2), tmp_path / "en.parquet")

    assert set(rows["finish_reason"]) == {"length"}
    assert rows["prompt_tokens"].isna().all()
    assert rows["completion_tokens"].isna().all()


def test_server_errors_are_retried_with_growing_backoff(server, caplog):
    prompt = "Harmful question number 0?"
    server.script(prompt, Reply(500), Reply(503))

    rows = generate(server.url, GREEDY, count=1, retry_backoff_s=0.3)

    first, second, third = server.times(prompt)
    assert 0.15 <= second - first < 0.6
    assert 0.3 <= third - second < 0.9
    assert len(rows) == 1
    assert rows["text"][0] == answer_text(prompt, rows["seed"][0])
    retries = [record.getMessage() for record in caplog.records if "retry" in record.getMessage()]
    assert len(retries) == 2
    assert "HTTP 500" in retries[0]
    assert "retry 1 of 3" in retries[0]
    assert "HTTP 503" in retries[1]
    assert "retry 2 of 3" in retries[1]


def test_trailing_slash_names_same_endpoint():
    def config(base_url):
        return {"models": {"m": {"backend": "openai", "model": "x", "base_url": base_url}}}

    assert endpoint_of(config("http://127.0.0.1:8000/v1/"), "m") == endpoint_of(config("http://127.0.0.1:8000/v1"), "m")


def test_retry_after_past_budget_stops_at_once(server, tmp_path):
    server.script("Harmful question number 1?", Reply(429, {"Retry-After": "86400"}))
    folder = tmp_path / "parts"

    started = time.monotonic()
    with pytest.raises(EndpointError, match=r"asked to wait 86400 s .* time_budget_s") as raised:
        generate(server.url, GREEDY, count=3, checkpoint=Checkpoint(folder, "fixed"), concurrency=1,
                 time_budget_s=30)

    assert time.monotonic() - started < 10
    assert not isinstance(raised.value, TimeBudgetError)
    assert sorted(Checkpoint(folder, "fixed").load()["id"]) == [0]


def test_retry_after_is_honoured(server):
    prompt = "Harmful question number 0?"
    server.script(prompt, Reply(429, {"Retry-After": "1"}))

    generate(server.url, GREEDY, count=1, retry_backoff_s=0.01)

    first, second = server.times(prompt)
    assert second - first >= 1.0


def test_retry_after_forms():
    import httpx

    assert retry_after_seconds(httpx.Headers({"Retry-After": "2.5"})) == 2.5
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250", "Retry-After": "9"})) == 0.25
    assert retry_after_seconds(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert retry_after_seconds(httpx.Headers({})) is None


def test_timeouts_are_retried(server, caplog):
    prompt = "Harmful question number 0?"
    server.script(prompt, Reply(delay_s=2.0))

    rows = generate(server.url, GREEDY, count=1, timeout_s=0.3)

    assert server.count(prompt) == 2
    assert len(rows) == 1
    assert any("no response within timeout_s=0.3" in record.getMessage() for record in caplog.records)


def test_gives_up_after_max_retries(server):
    prompt = "Harmful question number 0?"
    server.script(prompt, Reply(500), Reply(500), Reply(500))

    with pytest.raises(EndpointError, match=r"model fake-chat: prompt 0 pass 0 failed 3 times, last with HTTP 500"):
        generate(server.url, GREEDY, count=1, max_retries=2)
    assert server.count(prompt) == 3


def test_refused_key_is_not_retried_and_not_echoed(server):
    prompt = "Harmful question number 0?"
    server.script(prompt, Reply(401, body=json.dumps({"error": {"message": f"Incorrect API key: {KEY}"}})))

    with pytest.raises(EndpointError) as raised:
        generate(server.url, GREEDY, count=1)

    assert server.count(prompt) == 1
    assert "HTTP 401" in str(raised.value)
    assert KEY_VARIABLE in str(raised.value)
    assert KEY not in str(raised.value)


def test_concurrency_limit_is_respected(server):
    server.delay_s = 0.15

    generate(server.url, SAMPLED, count=6, concurrency=3)

    assert len(server.received) == 12
    assert server.max_in_flight == 3


def test_time_budget_fails_with_clear_message_and_keeps_checkpoint(server, tmp_path):
    for index in (2, 3):
        server.slow[f"Harmful question number {index}?"] = 5.0
    checkpoint = Checkpoint(tmp_path / "parts", "fixed")

    started = time.monotonic()
    with pytest.raises(TimeBudgetError) as raised:
        generate(server.url, GREEDY, count=4, checkpoint=checkpoint, concurrency=1, time_budget_s=1.0)

    assert time.monotonic() - started < 3
    message = str(raised.value)
    assert "models.fake-chat.time_budget_s" in message
    assert "2 of 4 requests" in message
    assert str(tmp_path / "parts") in message
    assert sorted(Checkpoint(tmp_path / "parts", "fixed").load()["id"]) == [0, 1]

    server.slow.clear()
    rows = generate(server.url, GREEDY, count=4, checkpoint=Checkpoint(tmp_path / "parts", "fixed"))
    assert len(rows) == 4
    # Prompt 2 was in flight when the budget ran out; prompt 3 was never sent before.
    assert [server.count(f"Harmful question number {index}?") for index in range(4)] == [1, 1, 2, 1]


def test_missing_api_key_is_a_config_error_at_start(monkeypatch):
    monkeypatch.delenv(KEY_VARIABLE)
    config = fill_defaults(
        {"models": {"gpt-mini": settings("https://api.openai.com/v1")}, "decoding": {"greedy": {}}}, SCHEMA
    )

    with pytest.raises(ConfigError, match=rf"models\.gpt-mini\.api_key_env: .*'{KEY_VARIABLE}' is not set"):
        check_study(config)
    with pytest.raises(ConfigError, match=KEY_VARIABLE):
        create_backend("openai", "gpt-mini", settings("https://api.openai.com/v1"))


def test_endpoint_without_key_variable_sends_no_key(server):
    generate(server.url, GREEDY, count=1, api_key_env=None)

    assert server.received[0].authorization is None


def test_schema_requires_source_for_local_models_only():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    base = {"decoding": {"greedy": {}}}

    def errors(model: dict) -> list[str]:
        return [error.message for error in validator.iter_errors({**base, "models": {"m": model}})]

    assert errors({"backend": "openai", "model": "x", "base_url": "http://127.0.0.1:8000/v1"}) == []
    assert errors({"source": "embedded:gemma3-270m"}) == []
    assert errors({"prompt_format": "chat"}) == ["'source' is a required property"]
    assert errors({"backend": "openai", "model": "x"}) == ["'base_url' is a required property"]


def test_raw_prompt_format_rejected_for_api_models():
    config = fill_defaults({"models": {"m": {**settings("http://127.0.0.1:9/v1"), "prompt_format": "raw"}},
                            "decoding": {"greedy": {}}}, SCHEMA)

    with pytest.raises(ConfigError, match=r"models\.m\.prompt_format"):
        check_study(config)


def test_configuration_pattern_splits_backends():
    import re

    config = {"models": {"local": {"backend": "transformers"}, "api.v2": {"backend": "openai"}}}

    assert re.fullmatch(configuration_pattern(config, "openai"), "api.v2_greedy")
    assert not re.fullmatch(configuration_pattern(config, "openai"), "local_greedy")
    assert not re.fullmatch(configuration_pattern(config, "openai"), "apixv2_greedy")
    assert re.fullmatch(configuration_pattern(config, "transformers"), "local_greedy")
    assert not re.fullmatch(configuration_pattern({"models": {}}, "openai"), "local_greedy")


def test_key_never_in_outputs_or_logs(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.script("Harmful question number 1?", Reply(429, {"Retry-After": "0"}))
    folder = tmp_path / "parts"
    checkpoint = Checkpoint(folder, "fixed")
    # Keep the parts: generate() leaves removing them to the script, after the output is written.
    rows = generate(server.url, count=3, checkpoint=checkpoint)
    write_table(rows, tmp_path / "en.parquet", GENERATIONS)

    assert {request.authorization for request in server.received} == {f"Bearer {KEY}"}
    assert list(folder.glob("part-*.parquet"))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text
    assert "429" in caplog.text


KILLED_JOB = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_openai_backend import generate, SAMPLED
    from xlsafety.checkpoint import Checkpoint

    generate({url!r}, SAMPLED, count=8, checkpoint=Checkpoint({folder!r}, "fixed"))
    """
)


def test_killed_job_resumes_without_resending_finished_requests(server, tmp_path):
    server.delay_s = 0.1
    folder = tmp_path / "parts"
    script = KILLED_JOB.format(tests=os.path.dirname(__file__), url=server.url, folder=str(folder))
    environment = {key: value for key, value in os.environ.items() if "proxy" not in key.lower()}
    job = subprocess.Popen([sys.executable, "-c", script], env=environment)

    deadline = time.monotonic() + 30
    while len(list(folder.glob("part-*.parquet"))) < 3 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    # Requests the killed job had already sent may still be arriving.
    time.sleep(0.3)
    saved = set(Checkpoint(folder, "fixed").load()["seed"])
    sent_before = len(server.received)
    total = 8 * SAMPLED.passes
    assert 3 <= len(saved) < total, "the job must be killed part-way through"

    resumed = generate(server.url, SAMPLED, count=8, checkpoint=Checkpoint(folder, "fixed"))
    resent = [request.seed for request in server.received[sent_before:]]
    uninterrupted = generate(server.url, SAMPLED, count=8)

    assert not saved & set(resent), "a checkpointed request was sent again"
    assert len(resent) == len(set(resent)) == total - len(saved)
    pd.testing.assert_frame_equal(written(resumed, tmp_path / "resumed.parquet"),
                                  written(uninterrupted, tmp_path / "uninterrupted.parquet"))


SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TINY = ROOT / "tests" / "configs" / "openai-tiny.yaml"


def snakemake(url: str, workdir: Path, *arguments: str, key: str | None = KEY, config: tuple[str, ...] = ()):
    environment = {name: value for name, value in os.environ.items()
                   if "proxy" not in name.lower() and name != KEY_VARIABLE}
    if key is not None:
        environment[KEY_VARIABLE] = key
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile", str(TINY),
               "--cores", "2", *arguments, "--config", f"models={{fake-chat: {{base_url: '{url}'}}}}", *config]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


SAMPLED_OUTPUTS = ("results/generations/fake-chat_sampled/en.parquet", "results/generations/fake-chat_sampled/th.parquet")


def test_more_passes_send_only_new_requests(server, tmp_path):
    assert snakemake(server.url, tmp_path, *SAMPLED_OUTPUTS).returncode == 0
    before = {path: pd.read_parquet(tmp_path / path) for path in SAMPLED_OUTPUTS}
    sent_before = len(server.received)

    result = snakemake(server.url, tmp_path, *SAMPLED_OUTPUTS, config=("decoding={sampled: {passes: 3}}",))
    assert result.returncode == 0, result.stderr[-3000:]

    new_requests = server.received[sent_before:]
    assert len(new_requests) == 2 * 2, "only the third pass of 2 prompts in 2 languages is new"
    for path, earlier in before.items():
        after = pd.read_parquet(tmp_path / path)
        assert len(after) == 2 * 3
        pd.testing.assert_frame_equal(after[after["pass"] < 2].reset_index(drop=True), earlier)
    log = (tmp_path / "results" / "logs" / "generate" / "fake-chat_sampled" / "en.log").read_text()
    assert "6 requests, 4 already done, sending 2" in log


def test_workflow_without_key_fails_before_any_job(server, tmp_path):
    result = snakemake(server.url, tmp_path, "-n", key=None)

    assert result.returncode != 0
    assert f"models.fake-chat.api_key_env: the environment variable '{KEY_VARIABLE}'" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


# Every stage but results/summary.md, whose header names each model's `source`, which an API
# model does not have.
TARGETS = ("results/matrix/refusal/wide.parquet", "results/summary/refusal/jsr.csv", "results/summary.md")


def test_workflow_end_to_end_with_openai_model(server, tmp_path):
    result = snakemake(server.url, tmp_path, *TARGETS)
    assert result.returncode == 0, result.stderr[-5000:]

    results = tmp_path / "results"
    passes = {"fake-chat_greedy": 1, "fake-chat_sampled": 2}
    for language in ["en", "th"]:
        for configuration, count in passes.items():
            generations = pd.read_parquet(results / "generations" / configuration / f"{language}.parquet")
            judgments = pd.read_parquet(results / "judgments" / "refusal" / configuration / f"{language}.parquet")
            assert len(generations) == 2 * count
            assert len(judgments) == len(generations)
            assert set(generations["backend"]) == {"openai"}
    assert len(server.received) == 2 * 2 * (1 + 2)
    assert not (results / "models").exists(), "an API model needs no prepared model"
    assert_only_generations_kept(results)
    assert len(pd.read_parquet(results / "matrix" / "refusal" / "cells.parquet")) == 2 * 2 * 2
    assert len(pd.read_csv(results / "irt" / "refusal" / "multigroup-2pl" / "parameters.csv")) > 0
    assert len(pd.read_csv(results / "summary" / "refusal" / "jsr.csv")) > 0

    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in result.stdout + result.stderr
