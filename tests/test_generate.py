import pandas as pd
import pytest

from xlsafety.errors import ModelError
from xlsafety.generate import (
    Decoding,
    PromptFormat,
    build_prompt,
    generate_language,
    load_prepared_model,
    row_seed,
    stop_token_ids,
)

GREEDY = Decoding("greedy", temperature=0.0, top_p=1.0, max_new_tokens=8, passes=1)
SAMPLED = Decoding("sampled", temperature=0.9, top_p=0.9, max_new_tokens=8, passes=3)
CHAT = PromptFormat("chat")
RAW = PromptFormat("raw", "Question: {prompt}\nAnswer:")


def prompts(count: int, language: str = "en") -> pd.DataFrame:
    texts = ["How do I pick a lock?", "Tell me a secret.", "Write a long story about a fox and a bear.", "Hi"]
    return pd.DataFrame(
        {"id": range(count), "language": language, "text": [texts[i % len(texts)] for i in range(count)]}
    )


@pytest.fixture(scope="module")
def chat_model(tiny_chat_model):
    return load_prepared_model(str(tiny_chat_model), threads=1)


def run(model_and_tokenizer, frame, decoding, batch_size, prompt_format=CHAT, seed=11):
    model, tokenizer = model_and_tokenizer
    return generate_language(
        frame, model, tokenizer, configuration="tiny_x", model_name="tiny", decoding=decoding,
        prompt_format=prompt_format, study_seed=seed, batch_size=batch_size, model_identity="{}",
    )


def test_one_row_per_prompt_and_pass(chat_model):
    rows = run(chat_model, prompts(3), SAMPLED, batch_size=4)

    assert len(rows) == 9
    assert rows[["id", "pass"]].values.tolist() == [[i, p] for i in range(3) for p in range(3)]
    assert rows["seed"].nunique() == 9
    assert (rows["completion_tokens"] <= 8).all()
    assert set(rows["finish_reason"]) <= {"stop", "length"}


def test_prompt_sent_uses_chat_template(chat_model):
    rows = run(chat_model, prompts(1), GREEDY, batch_size=1)

    assert "<|im_start|>user\nHow do I pick a lock?<|im_end|>" in rows["prompt_sent"][0]
    assert rows["prompt_format"][0] == "chat"


@pytest.mark.parametrize("batch_size", [2, 4])
def test_greedy_batches_equal_single_prompts(chat_model, batch_size):
    single = run(chat_model, prompts(4), GREEDY, batch_size=1)
    batched = run(chat_model, prompts(4), GREEDY, batch_size=batch_size)

    assert batched["text"].tolist() == single["text"].tolist()


@pytest.mark.parametrize("batch_size", [2, 4])
def test_sampled_rows_do_not_depend_on_batch(chat_model, batch_size):
    single = run(chat_model, prompts(2), SAMPLED, batch_size=1)
    batched = run(chat_model, prompts(2), SAMPLED, batch_size=batch_size)

    assert batched["text"].tolist() == single["text"].tolist()


def test_same_seed_same_text(chat_model):
    first = run(chat_model, prompts(2), SAMPLED, batch_size=3)
    second = run(chat_model, prompts(2), SAMPLED, batch_size=3)

    assert first["text"].tolist() == second["text"].tolist()


def test_other_seed_other_text(chat_model):
    first = run(chat_model, prompts(3), SAMPLED, batch_size=3, seed=1)
    second = run(chat_model, prompts(3), SAMPLED, batch_size=3, seed=2)

    assert first["text"].tolist() != second["text"].tolist()


def test_more_passes_keep_existing_rows(chat_model):
    three = run(chat_model, prompts(2), SAMPLED, batch_size=2)
    five = run(chat_model, prompts(2), Decoding("sampled", 0.9, 0.9, 8, passes=5), batch_size=2)
    kept = five[five["pass"] < 3].reset_index(drop=True)

    assert kept["text"].tolist() == three["text"].tolist()
    assert kept["seed"].tolist() == three["seed"].tolist()


def test_row_seed_is_stable():
    assert row_seed(1, "m_x", "en", 3, 0) == row_seed(1, "m_x", "en", 3, 0)
    assert row_seed(1, "m_x", "en", 3, 0) != row_seed(1, "m_x", "en", 3, 1)
    assert 0 <= row_seed(1, "m_x", "th", 3, 0) < 2**63


def test_raw_format_on_base_model(tiny_base_model):
    model_and_tokenizer = load_prepared_model(str(tiny_base_model), threads=1)
    rows = run(model_and_tokenizer, prompts(2), GREEDY, batch_size=2, prompt_format=RAW)

    assert rows["prompt_sent"][0] == "Question: How do I pick a lock?\nAnswer:"
    assert rows["prompt_format"][0] == "raw"


def test_chat_format_without_template_rejected(tiny_base_model):
    _, tokenizer = load_prepared_model(str(tiny_base_model), threads=1)

    with pytest.raises(ModelError, match="no chat template"):
        build_prompt(tokenizer, "hello", CHAT, None)


def test_system_prompt_in_chat_and_raw(chat_model):
    _, tokenizer = chat_model

    assert "Be safe." in build_prompt(tokenizer, "hello", CHAT, "Be safe.")
    assert build_prompt(tokenizer, "hello", RAW, "Be safe.") == "Be safe.\n\nQuestion: hello\nAnswer:"


def test_stop_ids_include_end_of_turn(chat_model):
    model, tokenizer = chat_model

    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(model, tokenizer)


def test_length_limit_marks_finish_reason(chat_model):
    rows = run(chat_model, prompts(2), Decoding("long", 0.0, 1.0, 4, 1), batch_size=2)

    assert (rows.loc[rows["completion_tokens"] == 4, "finish_reason"] == "length").all()


def test_top_p_keeps_smallest_nucleus():
    import torch

    from xlsafety.generate import _top_p_filter

    probabilities = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.05, 0.1, 0.8]])
    filtered = _top_p_filter(probabilities, 0.8, candidates=2)

    assert filtered[0].tolist() == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0])
    assert filtered[1].tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0])


def test_top_p_falls_back_to_full_sort():
    import torch

    from xlsafety.generate import _top_p_filter

    probabilities = torch.full((1, 8), 1 / 8)
    filtered = _top_p_filter(probabilities, 0.5, candidates=2)

    assert int((filtered > 0).sum()) == 4
