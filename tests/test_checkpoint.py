"""Checkpointed generation: a job killed with SIGKILL resumes without repeating finished requests."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import xlsafety.generate as generate_module
from xlsafety.checkpoint import Checkpoint, checkpoint_folder, fingerprint_of
from xlsafety.generate import Decoding, PromptFormat, generate_language, load_prepared_model

DECODING = Decoding("sampled", temperature=0.9, top_p=0.95, max_new_tokens=48, passes=2)
PROMPT_COUNT = 16


def prompts() -> pd.DataFrame:
    texts = [f"Question number {index}: how would someone do thing {index}?" for index in range(PROMPT_COUNT)]
    return pd.DataFrame({"id": range(PROMPT_COUNT), "language": "en", "text": texts})


def generate(model_and_tokenizer, checkpoint=None) -> pd.DataFrame:
    model, tokenizer = model_and_tokenizer
    return generate_language(
        prompts(), model, tokenizer, configuration="tiny_x", model_name="tiny", decoding=DECODING,
        prompt_format=PromptFormat("chat"), study_seed=5, batch_size=1, model_identity="{}",
        checkpoint=checkpoint,
    )


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint_of({"a": 1, "b": [1, 2]}) == fingerprint_of({"b": [1, 2], "a": 1})
    assert fingerprint_of({"a": 1}) != fingerprint_of({"a": 2})


def test_checkpoint_folder_is_hidden_sibling(tmp_path):
    assert checkpoint_folder(tmp_path / "en.parquet") == tmp_path / ".en.parquet.parts"


def test_parts_round_trip(tmp_path):
    checkpoint = Checkpoint(tmp_path / "parts", "abc")
    assert checkpoint.load().empty

    checkpoint.append([{"id": 1, "pass": 0, "text": "a"}])
    checkpoint.append([{"id": 2, "pass": 0, "text": "b"}])
    loaded = Checkpoint(tmp_path / "parts", "abc").load()

    assert loaded["text"].tolist() == ["a", "b"]


def test_other_settings_discard_parts(tmp_path):
    Checkpoint(tmp_path / "parts", "abc").append([{"id": 1, "pass": 0, "text": "a"}])

    assert Checkpoint(tmp_path / "parts", "other").load().empty
    assert not list((tmp_path / "parts").glob("part-*"))


def test_remove_deletes_folder(tmp_path):
    checkpoint = Checkpoint(tmp_path / "parts", "abc")
    checkpoint.load()
    checkpoint.remove()

    assert not (tmp_path / "parts").exists()


def test_keep_links_output_as_only_part(tmp_path):
    output = tmp_path / "en.parquet"
    pd.DataFrame({"id": [1], "pass": [0], "text": ["done"]}).to_parquet(output)
    checkpoint = Checkpoint(tmp_path / "parts", "abc")
    checkpoint.append([{"id": 1, "pass": 0, "text": "done"}])
    checkpoint.append([{"id": 2, "pass": 0, "text": "other"}])

    checkpoint.keep(output)

    assert [path.name for path in (tmp_path / "parts").glob("part-*")] == ["part-000000.parquet"]
    assert (tmp_path / "parts" / "part-000000.parquet").stat().st_ino == output.stat().st_ino
    output.unlink()
    assert Checkpoint(tmp_path / "parts", "abc").load()["text"].tolist() == ["done"]


def test_keep_copies_without_hard_links(tmp_path, monkeypatch):
    output = tmp_path / "en.parquet"
    pd.DataFrame({"id": [1], "pass": [0], "text": ["done"]}).to_parquet(output)

    def no_link(*arguments):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_link)
    Checkpoint(tmp_path / "parts", "abc").keep(output)

    part = tmp_path / "parts" / "part-000000.parquet"
    assert part.read_bytes() == output.read_bytes()
    assert part.stat().st_ino != output.stat().st_ino


@pytest.fixture(scope="module")
def chat_model(tiny_chat_model):
    return load_prepared_model(str(tiny_chat_model), threads=1)


KILLED_JOB = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_checkpoint import generate
    from xlsafety.checkpoint import Checkpoint
    from xlsafety.generate import load_prepared_model

    generate(load_prepared_model({model!r}, threads=1), Checkpoint({folder!r}, "fixed"))
    """
)


def count_generated_texts(monkeypatch) -> list[str]:
    """Wrap `generate_batch` so that the returned list collects every prompt text sent to the model."""
    sent = []
    original = generate_module.generate_batch

    def counting_generate_batch(model, tokenizer, texts, *arguments):
        sent.extend(texts)
        return original(model, tokenizer, texts, *arguments)

    monkeypatch.setattr(generate_module, "generate_batch", counting_generate_batch)
    return sent


def test_killed_job_resumes_without_repeats(tmp_path, tiny_chat_model, chat_model, monkeypatch):
    folder = tmp_path / "parts"
    script = KILLED_JOB.format(tests=os.path.dirname(__file__), model=str(tiny_chat_model), folder=str(folder))
    job = subprocess.Popen([sys.executable, "-c", script])

    deadline = time.monotonic() + 120
    while len(list(folder.glob("part-*.parquet"))) < 3 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    saved = len(list(folder.glob("part-*.parquet")))
    total = PROMPT_COUNT * DECODING.passes
    assert 3 <= saved < total, "the job must be killed part-way through"

    sent = count_generated_texts(monkeypatch)
    resumed = generate(chat_model, Checkpoint(folder, "fixed"))
    monkeypatch.undo()
    uninterrupted = generate(chat_model)

    assert len(sent) == total - saved
    pd.testing.assert_frame_equal(resumed, uninterrupted)


def test_more_passes_reuse_kept_rows(tmp_path, chat_model, monkeypatch):
    fewer = Decoding("sampled", temperature=0.9, top_p=0.95, max_new_tokens=48, passes=1)
    model, tokenizer = chat_model
    output = tmp_path / "en.parquet"
    checkpoint = Checkpoint(tmp_path / "parts", "fixed")
    first = generate_language(
        prompts(), model, tokenizer, configuration="tiny_x", model_name="tiny", decoding=fewer,
        prompt_format=PromptFormat("chat"), study_seed=5, batch_size=4, model_identity="{}", checkpoint=checkpoint,
    )
    first.to_parquet(output)
    checkpoint.keep(output)
    output.unlink()

    sent = count_generated_texts(monkeypatch)
    more = generate(chat_model, Checkpoint(tmp_path / "parts", "fixed"))

    assert len(sent) == PROMPT_COUNT, "only the second pass of each prompt is new"
    pd.testing.assert_frame_equal(more[more["pass"] == 0].reset_index(drop=True), first)
