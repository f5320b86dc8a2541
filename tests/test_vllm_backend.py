"""The vllm backend, with a fake `vllm` module in place of the real engine (which needs a GPU)."""

import sys
import types
from dataclasses import dataclass, field

import pandas as pd
import pytest

from xlsafety.backends import GenerationJob, create_backend, missing_engine_warnings
from xlsafety.checkpoint import Checkpoint
from xlsafety.errors import ModelError
from xlsafety.generate import Decoding, PromptFormat, row_seed
from xlsafety.models import prepare_model

SAMPLED = Decoding("sampled", temperature=0.7, top_p=0.9, max_new_tokens=5, passes=2)


@dataclass
class FakeSamplingParams:
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    stop: list | None
    stop_token_ids: list
    skip_special_tokens: bool


@dataclass
class FakeEngine:
    """Records every request and returns scripted completions."""

    model: str
    dtype: str
    seed: int
    tokenizer: object = None
    requests: list = field(default_factory=list)

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, inputs, sampling_params, use_tqdm):
        self.requests.extend(zip(inputs, sampling_params))
        return [fake_output(item["prompt_token_ids"], params) for item, params in zip(inputs, sampling_params)]


def fake_output(prompt_ids, params):
    # Seeds ending in an even digit stop early; the others reach the token limit with a broken character.
    if params.seed % 2 == 0:
        completion = types.SimpleNamespace(text=" refused ", token_ids=[1, 2], finish_reason="stop")
    else:
        completion = types.SimpleNamespace(text="long answer\ufffd", token_ids=[3] * params.max_tokens,
                                           finish_reason="length")
    return types.SimpleNamespace(prompt_token_ids=prompt_ids, outputs=[completion])


@pytest.fixture
def fake_vllm(monkeypatch, smollm2_tokenizer):
    module = types.ModuleType("vllm")
    engines = []

    def make_engine(model, dtype, seed):
        engine = FakeEngine(model, dtype, seed, smollm2_tokenizer)
        engines.append(engine)
        return engine

    module.LLM = make_engine
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return engines


@pytest.fixture(scope="module")
def prepared(tiny_chat_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vllm") / "prepared"
    prepare_model(str(tiny_chat_model), folder)
    return folder


def job(checkpoint=None) -> GenerationJob:
    return GenerationJob(configuration="tiny_sampled", model_name="tiny", decoding=SAMPLED,
                         prompt_format=PromptFormat("chat", stop_strings=("###",)), study_seed=3,
                         checkpoint=checkpoint)


def prompts() -> pd.DataFrame:
    return pd.DataFrame({"id": [4, 7], "language": "en", "text": ["Tell me a secret.", "Hi"]})


def test_missing_vllm_names_extra(monkeypatch, prepared):
    monkeypatch.setitem(sys.modules, "vllm", None)

    with pytest.raises(ModelError, match=r"pip install -e '\.\[vllm\]'"):
        create_backend("vllm", "tiny", {}, model_dir=str(prepared), threads=1, batch_size="auto")


def test_missing_vllm_warns_per_model(monkeypatch):
    config = {"models": {"big": {"backend": "vllm"}, "small": {"backend": "transformers"}}}
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)

    warnings = missing_engine_warnings(config)

    assert len(warnings) == 1
    assert warnings[0].startswith("models.big.backend: vllm is not installed here")


def test_installed_vllm_gives_no_warning(monkeypatch):
    config = {"models": {"big": {"backend": "vllm"}}}
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())

    assert missing_engine_warnings(config) == []


def test_vllm_registered_by_name():
    from xlsafety.backends import backend_names

    assert "vllm" in backend_names()


def test_auto_dtype_asks_for_bfloat16(fake_vllm, prepared):
    backend = create_backend("vllm", "tiny", {}, model_dir=str(prepared), threads=1, batch_size="auto")

    assert fake_vllm[0].dtype == "bfloat16"
    assert fake_vllm[0].model == str(prepared)
    assert backend.precision == "cuda bfloat16 vllm"


def test_requests_carry_row_settings(fake_vllm, prepared, smollm2_tokenizer):
    backend = create_backend("vllm", "tiny", {}, model_dir=str(prepared), threads=1, batch_size="auto")
    backend.generate(prompts(), job())
    requests = fake_vllm[0].requests

    assert len(requests) == 4
    seeds = {params.seed for _, params in requests}
    assert seeds == {row_seed(3, "tiny_sampled", "en", prompt_id, pass_index)
                     for prompt_id in (4, 7) for pass_index in (0, 1)}
    for item, params in requests:
        assert (params.temperature, params.top_p, params.max_tokens) == (0.7, 0.9, 5)
        assert params.stop == ["###"]
        assert smollm2_tokenizer.convert_tokens_to_ids("<|im_end|>") in params.stop_token_ids
        # The chat template's text already starts the turn, so no special token is added in front.
        assert smollm2_tokenizer.decode(item["prompt_token_ids"]).startswith("<|im_start|>")


def test_rows_map_finish_reason_and_text(fake_vllm, prepared):
    backend = create_backend("vllm", "tiny", {}, model_dir=str(prepared), threads=1, batch_size="auto")
    rows = backend.generate(prompts(), job())

    assert rows[["id", "pass"]].values.tolist() == [[4, 0], [4, 1], [7, 0], [7, 1]]
    stopped = rows[rows["seed"] % 2 == 0]
    cut = rows[rows["seed"] % 2 == 1]
    assert (stopped["finish_reason"] == "stop").all()
    assert (stopped["text"] == "refused").all()
    assert (cut["finish_reason"] == "length").all()
    assert (cut["text"] == "long answer").all()
    assert (cut["completion_tokens"] == 5).all()
    assert (rows["backend"] == "vllm").all()
    assert (rows["prompt_tokens"] > 0).all()


def test_resume_sends_only_pending(fake_vllm, prepared, tmp_path):
    backend = create_backend("vllm", "tiny", {}, model_dir=str(prepared), threads=1, batch_size="auto")
    first = backend.generate(prompts(), job(Checkpoint(tmp_path / "parts", "fixed")))
    saved = Checkpoint(tmp_path / "partial", "fixed")
    saved.load()
    saved.append(first.head(3)[["id", "pass", "seed", "prompt_sent", "text", "finish_reason", "prompt_tokens",
                                "completion_tokens"]].to_dict("records"))
    fake_vllm[0].requests.clear()

    resumed = backend.generate(prompts(), job(Checkpoint(tmp_path / "partial", "fixed")))

    assert len(fake_vllm[0].requests) == 1
    assert resumed["text"].tolist() == first["text"].tolist()
