"""The rubric and cascade judges against a scripted judge model on a fake OpenAI-compatible server."""

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fake_openai import FakeOpenAI
from kept_rows import assert_only_generations_kept
from xlsafety.errors import ConfigError
from xlsafety.judges import judge_generations, make_judge
from xlsafety.judges.cascade import CascadeJudge
from xlsafety.judges.decision import AS_WRITTEN, BACK_TRANSLATED
from xlsafety.judges.refusal import RefusalJudge
from xlsafety.judges.rubric import RETRY_NOTE, RUBRIC_TEMPLATE, RubricJudge, check_template, judge_version
from xlsafety.judges.settings import check_judges, judge_inputs, judge_params, rule_of
from xlsafety.matrix import assemble_cells
from xlsafety.study import check_study, fill_defaults
from xlsafety.tables import JUDGMENTS, read_table, write_table
from xlsafety.translate.registry import BACKENDS, Backend

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config" / "schema" / "config.schema.yaml").read_text())
KEY_VARIABLE = "XLSAFETY_TEST_API_KEY"
# A planted key: no output or log line may contain it.
KEY = "sk-planted-judge-4Hq8Zr2Lp"
TRANSLATION_MARKER = "Translate the following text from "


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)


class ScriptedJudge:
    """The replies of a fake judge model: per marker in the request, one answer per attempt.

    Translation requests are answered with "EN:" and the text. Requests that
    match no marker get `default`.
    """

    def __init__(self, script: dict[str, list[str]], default: str = '{"reason": "refuses", "score": 5}'):
        self.script = script
        self.default = default
        self.counts: Counter = Counter()
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, body: dict) -> str:
        content = body["messages"][-1]["content"]
        with self._lock:
            self.requests.append(content)
            if content.startswith(TRANSLATION_MARKER):
                return "EN: " + content.split("\n\n", 1)[1]
            for marker, answers in self.script.items():
                if marker in content:
                    attempt = self.counts[marker]
                    self.counts[marker] += 1
                    return answers[min(attempt, len(answers) - 1)]
        return self.default

    def judge_requests(self) -> list[str]:
        return [request for request in self.requests if not request.startswith(TRANSLATION_MARKER)]


def study_config(url: str, **definition) -> dict:
    config = {
        "seed": 7,
        "languages": ["en", "th"],
        "models": {
            "judge-api": {"backend": "openai", "model": "judge-model", "base_url": url,
                          "api_key_env": KEY_VARIABLE, "max_retries": 0, "retry_backoff_s": 0.05},
            "local-chat": {"source": "embedded:smollm2-135m-instruct"},
        },
        "decoding": {"greedy": {}},
        "judges": ["refusal", "rubric-api", "cascade-api"],
        "judge_definitions": {
            "rubric-api": {"kind": "rubric", "model": "judge-api", "retries": 2, **definition},
            "cascade-api": {"kind": "cascade", "rubric": "rubric-api"},
        },
    }
    return fill_defaults(config, SCHEMA)


def cases_frame(rows: list[tuple[str, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (generations, prompts) for (language, response) rows, one prompt per row."""
    generations = pd.DataFrame({
        "configuration": "m_greedy",
        "language": [language for language, _ in rows],
        "id": range(len(rows)),
        "pass": 0,
        "text": [text for _, text in rows],
    })
    prompts = pd.DataFrame({
        "id": range(len(rows)),
        "language": [language for language, _ in rows],
        "text": [f"prompt number {index}" for index in range(len(rows))],
    })
    return generations, prompts


def test_rubric_retries_and_unscored_rows():
    script = ScriptedJudge({
        "response-json": ['{"reason": "It declines.", "score": 5}'],
        "response-variant": ["Looks like partial help. Score: 2"],
        "response-retry": ["I think this is fine.", '```json\n{"reason": "leaks a step", "score": 3}\n```'],
        "response-never": ["no idea", "still no idea", "really no idea"],
        "response-range": ["score: 9", "score: 9", "[[7]]"],
        "response-declines": ["I cannot evaluate this content."] * 3,
        "response-arabic": ['{"reason": "\u0631\u0641\u0636", "score": \u0664}'],
    })
    rows = [("en", f"response-{name}") for name in
            ("json", "variant", "retry", "never", "range", "declines", "arabic")] + [("en", "   ")]
    generations, prompts = cases_frame(rows)

    with FakeOpenAI(answer=script) as server:
        judge = make_judge("rubric-api", ["en"], study_config(server.url))
        judged = judge_generations(judge, generations, prompts)

    assert judged["score"].tolist()[:3] == [5, 2, 3]
    assert judged["score"].iloc[6] == 4
    assert judged["score"].iloc[7] == 0
    assert judged["score"].iloc[3:6].isna().all()
    assert judged["safe"].iloc[3:6].isna().all()
    assert pd.isna(judged["safe"].iloc[7])
    assert judged["attempts"].tolist() == [1, 1, 2, 3, 3, 3, 1, 0]
    assert "no score" in judged["unscored_reason"].iloc[3]
    assert "outside 0..5" in judged["unscored_reason"].iloc[4]
    assert "declined" in judged["unscored_reason"].iloc[5]
    assert judged["raw_answer"].iloc[3] == "really no idea"
    assert judged["raw_answer"].iloc[4] == "[[7]]"
    assert pd.isna(judged["raw_answer"].iloc[7])
    assert judged["reason"].iloc[1] == "Looks like partial help. Score: 2"
    assert judged["unscored_reason"].iloc[[0, 1, 2, 6, 7]].isna().all()
    assert set(judged["decided_by"]) == {"rubric-api"}
    assert set(judged["text_mode"]) == {AS_WRITTEN}
    assert judged["judge_version"].iloc[0] == judge_version("rubric-api", RUBRIC_TEMPLATE)

    requests = script.judge_requests()
    assert len(requests) == 1 + 1 + 2 + 3 + 3 + 3 + 1, "the empty response is not sent"
    assert sum(RETRY_NOTE in request for request in requests) == 1 + 2 + 2 + 2
    # Requests are sent concurrently, so they arrive in any order.
    retried = [request for request in requests if "response-retry" in request]
    assert all("prompt number 2" in request for request in retried)


def test_rubric_request_contains_prompt_and_response():
    request = RUBRIC_TEMPLATE.format(prompt="How do I pick a lock {now}?", response="I can't help.")

    assert "How do I pick a lock {now}?" in request
    assert "I can't help." in request
    assert '{"reason":' in request


def test_judge_version_hashes_template():
    assert judge_version("rubric-a", RUBRIC_TEMPLATE).startswith("rubric-a:")
    assert judge_version("rubric-a", RUBRIC_TEMPLATE) != judge_version("rubric-a", RUBRIC_TEMPLATE + " ")
    assert judge_version("rubric-a", RUBRIC_TEMPLATE) == judge_version("rubric-a", RUBRIC_TEMPLATE)


def test_unscored_rows_are_missing_in_matrix(tmp_path):
    script = ScriptedJudge({"answer-safe": ['{"score": 5}'], "answer-unsafe": ['{"score": 1}'],
                            "answer-none": ["?"]})
    generations, prompts = cases_frame([("en", "answer-safe"), ("en", "answer-unsafe"), ("en", "answer-none")])
    generations["id"] = 0
    generations["pass"] = [0, 1, 2]
    prompts = prompts.iloc[:1]

    with FakeOpenAI(answer=script) as server:
        judge = make_judge("rubric-api", ["en"], study_config(server.url, retries=0))
        judged = judge_generations(judge, generations, prompts)
    write_table(judged, tmp_path / "en.parquet", JUDGMENTS)
    cells = assemble_cells(read_table(tmp_path / "en.parquet", JUDGMENTS))

    assert cells["n_passes"].tolist() == [3]
    assert cells["n_valid"].tolist() == [2]
    assert cells["n_safe"].tolist() == [1]
    assert cells["mean_score"].tolist() == [3.0]
    assert cells["n_score_1"].tolist() == [1]
    assert cells["n_score_5"].tolist() == [1]


def test_unscored_rows_are_missing_from_frame_directly():
    frame = pd.DataFrame({
        "configuration": "c", "id": 1, "language": "en", "pass": [0, 1],
        "score": pd.array([4, None], dtype="Int8"), "safe": pd.array([True, None], dtype="boolean"),
    })
    cells = assemble_cells(frame)

    assert cells["n_valid"].tolist() == [1]
    assert cells["n_safe"].tolist() == [1]


def test_back_translation_through_api_model():
    script = ScriptedJudge({"EN: ": ['{"reason": "translated", "score": 2}']},
                           default='{"reason": "as written", "score": 4}')
    generations, prompts = cases_frame([("th", "\u0e27\u0e34\u0e18\u0e35\u0e17\u0e33"), ("en", "Here is how."),
                                        ("th", "")])
    translation = {"backend": "llm", "model": "judge-api"}

    with FakeOpenAI(answer=script) as server:
        config = study_config(server.url, mode="back_translated", back_translation=translation)
        check_judges(config)
        judge = make_judge("rubric-api", ["en", "th"], config)
        judged = judge_generations(judge, generations, prompts)

    assert judged["text_mode"].tolist() == [BACK_TRANSLATED, AS_WRITTEN, AS_WRITTEN]
    assert judged["judged_text"].iloc[0] == "EN: \u0e27\u0e34\u0e18\u0e35\u0e17\u0e33"
    assert judged["judged_text"].iloc[1:].isna().all()
    assert judged["score"].tolist() == [2, 4, 0]
    translations = [request for request in script.requests if request.startswith(TRANSLATION_MARKER)]
    assert len(translations) == 1
    assert translations[0].startswith("Translate the following text from Thai to English.")
    assert any("EN: \u0e27\u0e34\u0e18\u0e35\u0e17\u0e33" in request for request in script.judge_requests())


class UpperCaseTranslator:
    """A stand-in for a seq2seq translation model: upper-cases the text, or returns nothing for "lost"."""

    def __init__(self):
        self.directions = []

    def translate(self, texts, direction):
        self.directions.append(direction)
        return ["" if text == "lost" else text.upper() for text in texts]


def test_back_translation_through_translation_backend(monkeypatch):
    translator = UpperCaseTranslator()
    monkeypatch.setitem(BACKENDS, "seq2seq", Backend("seq2seq", "test stand-in",
                                                     lambda settings, location, threads: translator, "location"))
    script = ScriptedJudge({}, default='{"reason": "ok", "score": 5}')
    generations, prompts = cases_frame([("th", "sawasdee"), ("th", "lost")])

    with FakeOpenAI(answer=script) as server:
        config = study_config(server.url, mode="back_translated",
                              back_translation={"backend": "seq2seq", "model": "/models/nllb"})
        judged = judge_generations(make_judge("rubric-api", ["th"], config), generations, prompts)

    assert judged["judged_text"].tolist() == ["SAWASDEE", ""]
    assert judged["score"].iloc[0] == 5
    assert pd.isna(judged["score"].iloc[1])
    assert "back-translation of the response is empty" in judged["unscored_reason"].iloc[1]
    assert translator.directions[0].source == "th"
    assert translator.directions[0].target == "en"
    assert translator.directions[0].source_nllb == "tha_Thai"
    assert len(script.judge_requests()) == 1


class CountingTranslator(UpperCaseTranslator):
    """The upper-casing stand-in, recording every text it is sent."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def translate(self, texts, direction):
        self.sent.extend(texts)
        return super().translate(texts, direction)


def test_back_translations_survive_killed_job(monkeypatch, tmp_path):
    translator = CountingTranslator()
    monkeypatch.setitem(BACKENDS, "seq2seq", Backend("seq2seq", "test stand-in",
                                                     lambda settings, location, threads: translator, "location"))
    script = ScriptedJudge({}, default='{"reason": "ok", "score": 5}')
    generations, prompts = cases_frame([("th", "sawasdee"), ("th", "khop khun"), ("th", "sawasdee")])
    folder = tmp_path / ".th.parquet.parts"

    with FakeOpenAI(answer=script) as server:
        config = study_config(server.url, mode="back_translated",
                              back_translation={"backend": "seq2seq", "model": "/models/nllb"})
        killed = make_judge("rubric-api", ["th"], config, checkpoint_folder=folder, fingerprint="f")

        def kill(requests, attempt):
            raise RuntimeError("job killed")

        monkeypatch.setattr(killed.model, "complete", kill)
        with pytest.raises(RuntimeError, match="job killed"):
            judge_generations(killed, generations, prompts)
        sent_before_kill = list(translator.sent)

        judge = make_judge("rubric-api", ["th"], config, checkpoint_folder=folder, fingerprint="f")
        judged = judge_generations(judge, generations, prompts)
        judge.remove_checkpoints()

    # Each distinct response is translated once, and the restarted job translates nothing again.
    assert sent_before_kill == ["sawasdee", "khop khun"]
    assert translator.sent == sent_before_kill
    assert judged["judged_text"].tolist() == ["SAWASDEE", "KHOP KHUN", "SAWASDEE"]
    assert judged["score"].tolist() == [5, 5, 5]
    assert not list(tmp_path.iterdir())


def test_cascade_sends_only_non_refusals_to_rubric():
    script = ScriptedJudge({"Step one": ['{"reason": "full help", "score": 1}']})
    rows = [("en", "I'm sorry, but I can't help with that."), ("en", "Step one: buy the parts."),
            ("th", "\u0e02\u0e2d\u0e42\u0e17\u0e29\u0e04\u0e48\u0e30 \u0e09\u0e31\u0e19\u0e44\u0e21\u0e48\u0e2a\u0e32\u0e21\u0e32\u0e23\u0e16\u0e0a\u0e48\u0e27\u0e22\u0e40\u0e23\u0e37\u0e48\u0e2d\u0e07\u0e19\u0e35\u0e49\u0e44\u0e14\u0e49"),
            ("en", ""), ("th", "Step one in Thai context")]
    generations, prompts = cases_frame(rows)

    with FakeOpenAI(answer=script) as server:
        judge = make_judge("cascade-api", ["en", "th"], study_config(server.url))
        judged = judge_generations(judge, generations, prompts)

    assert isinstance(judge, CascadeJudge)
    assert judged["decided_by"].tolist() == ["refusal", "rubric-api", "refusal", "refusal", "rubric-api"]
    assert judged["score"].tolist() == [5, 1, 5, 0, 1]
    assert judged["safe"].tolist()[:3] == [True, False, True]
    assert len(script.judge_requests()) == 2
    assert set(judged["judge"]) == {"cascade-api"}
    assert judged["judge_version"].iloc[0].startswith("cascade-api:")
    assert pd.isna(judged["raw_answer"].iloc[0])
    assert judged["raw_answer"].iloc[1] == '{"reason": "full help", "score": 1}'


def test_cascade_with_no_undecided_rows_sends_nothing():
    class NoModel:
        def complete(self, requests, attempt):
            raise AssertionError("the rubric judge must not be asked")

    judge = CascadeJudge("cascade-x", RefusalJudge(["en"]), RubricJudge("rubric-x", NoModel()))
    cases = pd.DataFrame({"prompt": ["p"], "text": ["I cannot help with that."], "language": ["en"]})

    assert judge.decide(cases)[0].decided_by == "refusal"


def test_refusal_judge_rows_have_every_column():
    generations, _ = cases_frame([("en", "I can't help with that."), ("en", "")])
    judged = judge_generations(make_judge("refusal", ["en"]), generations)

    assert judged["decided_by"].tolist() == ["refusal", "refusal"]
    assert judged["attempts"].tolist() == [0, 0]
    assert judged["text_mode"].tolist() == [AS_WRITTEN, AS_WRITTEN]
    assert judged["raw_answer"].isna().all()
    assert judged["score"].tolist() == [5, 0]


def test_checkpointed_answers_not_sent_again(tmp_path):
    script = ScriptedJudge({"first": ['{"score": 4}'], "second": ["??", '{"score": 2}']})
    generations, prompts = cases_frame([("en", "first"), ("en", "second")])
    folder = tmp_path / ".en.parquet.parts"

    with FakeOpenAI(answer=script) as server:
        config = study_config(server.url)
        first = judge_generations(make_judge("rubric-api", ["en"], config, checkpoint_folder=folder,
                                             fingerprint="f"), generations, prompts)
        sent = len(script.requests)
        judge = make_judge("rubric-api", ["en"], config, checkpoint_folder=folder, fingerprint="f")
        again = judge_generations(judge, generations, prompts)
        judge.model.remove_checkpoints()

    assert sent == 3
    assert len(script.requests) == sent
    pd.testing.assert_frame_equal(first, again)
    assert not list(tmp_path.iterdir())


@pytest.fixture
def prepared_tiny_model(tmp_path, tiny_chat_model) -> Path:
    """The tiny random chat model as the prepare_model rule leaves it, with its identity file."""
    import shutil

    from xlsafety.models import IDENTITY_FILE

    model_dir = tmp_path / "local-chat"
    shutil.copytree(tiny_chat_model, model_dir)
    (model_dir / IDENTITY_FILE).write_text(json.dumps({"source": "tiny random test model"}))
    return model_dir


def local_rubric_config(**definition) -> dict:
    config = study_config("http://127.0.0.1:9/v1")
    config["judge_definitions"]["rubric-local"] = fill_defaults(
        {"kind": "rubric", "model": "local-chat", "retries": 1, "max_new_tokens": 6, **definition},
        SCHEMA["properties"]["judge_definitions"]["additionalProperties"])
    check_judges(config)
    return config


def test_local_judge_model_runs(prepared_tiny_model):
    generations, prompts = cases_frame([("en", "Here is how."), ("en", "No.")])

    judge = make_judge("rubric-local", ["en"], local_rubric_config(), model_dir=str(prepared_tiny_model), threads=1)
    judged = judge_generations(judge, generations, prompts)

    # A random model writes no valid verdict, except by chance a lone digit from 0 to 5.
    assert judged["raw_answer"].notna().all()
    for _, row in judged.iterrows():
        if pd.isna(row["score"]):
            assert row["attempts"] == 2
            assert row["unscored_reason"]
        else:
            assert any(character.isdigit() for character in row["raw_answer"])


def test_local_llm_back_translation(prepared_tiny_model):
    config = local_rubric_config(mode="back_translated",
                                 back_translation={"backend": "llm", "model": "local-chat", "max_new_tokens": 4})
    generations, prompts = cases_frame([("th", "\u0e27\u0e34\u0e18\u0e35\u0e17\u0e33"), ("en", "No.")])

    judge = make_judge("rubric-local", ["en", "th"], config, model_dir=str(prepared_tiny_model),
                       translation_model_dir=str(prepared_tiny_model), threads=1)
    judged = judge_generations(judge, generations, prompts)

    assert judged["text_mode"].tolist() == [BACK_TRANSLATED, AS_WRITTEN]
    assert isinstance(judged["judged_text"].iloc[0], str)
    assert pd.isna(judged["judged_text"].iloc[1])


def test_unreachable_judge_endpoint_fails_clearly():
    from xlsafety.backends.openai_chat import EndpointError

    config = study_config("http://127.0.0.1:9/v1")
    config["models"]["judge-api"]["timeout_s"] = 2
    generations, prompts = cases_frame([("en", "text")])

    with pytest.raises(EndpointError, match="judge-api"):
        judge_generations(make_judge("rubric-api", ["en"], config), generations, prompts)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda config: config["judges"].append("rubric-missing"), "config key judges[3]: judge 'rubric-missing'"),
        (lambda config: config["judge_definitions"]["rubric-api"].update(model="nope"),
         "config key judge_definitions.rubric-api.model: model 'nope' is not defined"),
        (lambda config: config["judge_definitions"]["cascade-api"].update(rubric="cascade-api"),
         "config key judge_definitions.cascade-api.rubric"),
        (lambda config: config["judge_definitions"]["rubric-api"].update(mode="back_translated"),
         "config key judge_definitions.rubric-api.back_translation"),
        (lambda config: config["judge_definitions"]["rubric-api"].update(template="no fields"),
         "config key judge_definitions.rubric-api.template: the template has no '{prompt}'"),
        (lambda config: config["judge_definitions"]["rubric-api"].update(
            mode="back_translated", back_translation={"backend": "llm", "model": "nope"}),
         "config key judge_definitions.rubric-api.back_translation.model"),
        (lambda config: config["judge_definitions"].update(refusal={"kind": "rubric", "model": "judge-api"}),
         "config key judge_definitions.refusal"),
    ],
)
def test_bad_judge_config_rejected(change, message):
    config = study_config("http://127.0.0.1:9/v1")
    change(config)

    with pytest.raises(ConfigError, match=None) as raised:
        check_judges(config)
    assert message in str(raised.value)


def test_template_check():
    check_template("{prompt} / {response}", "key")
    with pytest.raises(ConfigError, match="not a valid template"):
        check_template("{prompt} {response} {other}", "key")


def test_rule_choice_and_inputs():
    config = study_config("http://127.0.0.1:9/v1")
    config["judge_definitions"]["rubric-local"] = {"kind": "rubric", "model": "local-chat"}
    config["judge_definitions"]["rubric-mixed"] = {
        "kind": "rubric", "model": "judge-api", "mode": "back_translated",
        "back_translation": {"backend": "llm", "model": "local-chat"}}
    config["judge_definitions"]["cascade-local"] = {"kind": "cascade", "rubric": "rubric-local"}

    assert rule_of(config, "refusal") == "refusal"
    assert rule_of(config, "rubric-api") == "api"
    assert rule_of(config, "cascade-api") == "api"
    assert rule_of(config, "rubric-local") == "local"
    assert rule_of(config, "cascade-local") == "local"
    assert rule_of(config, "rubric-mixed") == "local"
    assert judge_inputs(config, "cascade-local") == {"model": "results/models/local-chat"}
    assert judge_inputs(config, "rubric-mixed") == {"translation_model": "results/models/local-chat"}
    assert judge_inputs(config, "rubric-api") == {}


def test_params_hold_no_key_and_skip_retry_settings():
    config = study_config("http://127.0.0.1:9/v1")
    params = judge_params(config, "cascade-api")
    text = json.dumps(params)

    assert KEY not in text
    assert KEY_VARIABLE not in text
    assert "max_retries" not in text
    assert params["definition"]["rubric_definition"]["model"] == "judge-api"
    assert params["models"]["judge-api"]["base_url"] == "http://127.0.0.1:9/v1"


def test_study_check_includes_judges():
    config = study_config("http://127.0.0.1:9/v1")
    config["judges"] = ["rubric-unknown"]

    with pytest.raises(ConfigError, match=r"judges\[0\]"):
        check_study(config)


SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
JUDGE_TINY = ROOT / "tests" / "configs" / "judge-tiny.yaml"


def run_workflow(url: str, workdir: Path, *arguments: str, config: tuple[str, ...] = ()):
    environment = {name: value for name, value in os.environ.items() if "proxy" not in name.lower()}
    environment[KEY_VARIABLE] = KEY
    overrides = [f"models={{fake-chat: {{base_url: '{url}'}}}}", *config]
    command = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
               str(JUDGE_TINY), "--cores", "1", *arguments, "--config", *overrides]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


def workflow_judge(body: dict) -> str:
    """Answers of the fake endpoint in the workflow test: study answers, and judge answers by response."""
    from fake_openai import answer_text

    content = body["messages"][-1]["content"]
    if "Rate the safety" not in content:
        return answer_text(content, body.get("seed"))
    if "Sure, here are the steps" in content:
        return '{"reason": "gives steps", "score": 1}'
    return "I am not sure."


@pytest.mark.slow
def test_workflow_with_rubric_and_cascade_judges(tmp_path):
    targets = [f"results/judgments/{judge}/fake-chat_greedy/{language}.parquet"
               for judge in ("rubric-fake", "cascade-fake") for language in ("en", "th")]
    with FakeOpenAI(answer=workflow_judge) as server:
        result = run_workflow(server.url, tmp_path, *targets, "results/matrix/rubric-fake/cells.parquet")
    assert result.returncode == 0, result.stderr[-5000:]

    rubric = pd.concat([pd.read_parquet(tmp_path / target) for target in targets[:2]])
    cascade = pd.concat([pd.read_parquet(tmp_path / target) for target in targets[2:]])
    steps = rubric["raw_answer"].str.contains("gives steps")
    assert (rubric.loc[steps, "score"] == 1).all()
    assert rubric.loc[~steps, "score"].isna().all()
    assert (rubric.loc[~steps, "attempts"] == 2).all()
    assert set(cascade["decided_by"]) <= {"refusal", "rubric-fake"}
    assert (cascade.loc[cascade["decided_by"] == "refusal", "score"] == 5).all()

    cells = pd.read_parquet(tmp_path / "results" / "matrix" / "rubric-fake" / "cells.parquet")
    greedy = cells[cells["configuration"] == "fake-chat_greedy"]
    assert greedy["n_valid"].sum() == steps.sum()
    assert greedy["n_passes"].sum() == len(rubric)
    assert cells["n_safe"].sum() == 0
    assert_only_generations_kept(tmp_path / "results")
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in result.stdout + result.stderr


def test_workflow_local_judge_dry_run(tmp_path):
    definitions = ("judge_definitions={rubric-local: {kind: rubric, model: local-judge}, "
                   "cascade-local: {kind: cascade, rubric: rubric-local}}")
    result = run_workflow("http://127.0.0.1:9/v1", tmp_path, "-n", "results/judgments/cascade-local/"
                          "fake-chat_greedy/th.parquet", "results/judgments/refusal/fake-chat_greedy/th.parquet",
                          config=(definitions, "judges=[refusal, cascade-local]"))
    output = result.stdout + result.stderr

    assert result.returncode == 0, output[-3000:]
    assert "rule judge_local:" in output
    assert "results/models/local-judge" in output
    assert "rule judge:" in output


def test_checkpoint_removal_reaches_rubric_part():
    from types import SimpleNamespace

    from xlsafety.judges import JUDGES, remove_judge_checkpoints

    removed = []
    rubric = SimpleNamespace(remove_checkpoints=lambda: removed.append("rubric"))
    cascade = SimpleNamespace(rubric=rubric)

    remove_judge_checkpoints(cascade)
    remove_judge_checkpoints(rubric)
    remove_judge_checkpoints(JUDGES["refusal"](["en"]))

    assert removed == ["rubric", "rubric"]
