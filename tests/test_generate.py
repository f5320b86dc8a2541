import pandas as pd
import pytest

from xlsafety.errors import ModelError
from xlsafety.generate import (
    Decoding,
    PromptFormat,
    build_prompt,
    build_requests,
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

    from xlsafety.generate import _nucleus

    ordered = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.8, 0.1, 0.05, 0.05]])
    nucleus = _nucleus(ordered, 0.8)

    assert nucleus[0].tolist() == pytest.approx([0.5, 0.3, 0.0, 0.0])
    assert nucleus[1].tolist() == pytest.approx([0.8, 0.0, 0.0, 0.0])


def draw_shares(probabilities, top_p: float, candidates: tuple[int, ...], draws: int = 1000) -> list[float]:
    """Return each token's share of `draws` samples at evenly spaced uniform numbers."""
    import torch

    from xlsafety.generate import sample_tokens

    uniforms = (torch.arange(draws, dtype=torch.float64) + 0.5) / draws
    rows = probabilities.expand(draws, -1)
    tokens = sample_tokens(rows, uniforms, top_p, candidates=candidates)
    return (torch.bincount(tokens, minlength=probabilities.shape[-1]) / draws).tolist()


def test_sampled_shares_follow_nucleus():
    import torch

    # Unsorted on purpose: the nucleus is tokens 3 and 1.
    probabilities = torch.tensor([[0.05, 0.3, 0.15, 0.5]])

    shares = draw_shares(probabilities, 0.8, candidates=(2,))

    assert shares == pytest.approx([0.0, 0.3 / 0.8, 0.0, 0.5 / 0.8], abs=2e-3)


def test_sampling_falls_back_to_full_sort():
    import torch

    # Two candidates hold 0.25 of the mass, so the nucleus of 0.5 needs a full sort.
    probabilities = torch.full((1, 8), 1 / 8)

    shares = draw_shares(probabilities, 0.5, candidates=(2,))

    assert sum(share > 0 for share in shares) == 4
    assert sum(shares) == pytest.approx(1.0)


def test_sampling_without_top_p_uses_every_token():
    import torch

    probabilities = torch.tensor([[0.1, 0.0, 0.6, 0.3]])

    shares = draw_shares(probabilities, 1.0, candidates=(2,))

    assert shares == pytest.approx([0.1, 0.0, 0.6, 0.3], abs=2e-3)


@pytest.mark.parametrize("decoding", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
@pytest.mark.parametrize("bad_row", [[float("nan"), 0.0, 1.0], [float("inf"), 0.0, 1.0], [float("-inf")] * 3],
                         ids=["nan", "inf", "all-minus-inf"])
def test_non_finite_logits_rejected(decoding, bad_row):
    import torch

    from xlsafety.generate import make_token_chooser

    choose = make_token_chooser([1, 2], decoding)
    logits = torch.tensor([[0.0, 1.0, 2.0], bad_row])

    with pytest.raises(ModelError, match="NaN or infinite logits"):
        choose(logits, [0, 1])


@pytest.mark.parametrize("decoding", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_masked_logits_accepted(decoding):
    import torch

    from xlsafety.generate import make_token_chooser

    choose = make_token_chooser([1, 2], decoding)
    logits = torch.tensor([[0.0, 1.0, float("-inf")], [float("-inf"), 5.0, 1.0]])

    tokens = choose(logits, [0, 1])

    assert tokens[0] != 2
    assert tokens[1] != 0


def test_greedy_takes_first_tied_maximum():
    import torch

    from xlsafety.generate import make_token_chooser

    choose = make_token_chooser([1, 2, 3], GREEDY)
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    wide = torch.randn(64, 49152)
    wide[:, 1000] = wide.amax(dim=-1)

    assert choose(logits, [0, 1, 2]).tolist() == [1, 0, 0]
    assert torch.equal(choose(wide, list(range(64))), wide.argmax(dim=-1))


@pytest.mark.parametrize("temperature", [1e-3, 1e-38, 1e-45])
def test_tiny_temperature_takes_argmax(temperature):
    import torch

    from xlsafety.generate import make_token_chooser

    choose = make_token_chooser([1, 2], Decoding("cold", temperature, 0.9, 4, 1))
    logits = torch.tensor([[1.0, 5.0, 2.0, 0.5], [float("-inf"), 0.0, 3.0, 2.9]])

    assert choose(logits, [0, 1]).tolist() == [1, 2]


def test_sampling_mixes_narrow_and_wide_rows():
    import torch

    from xlsafety.generate import sample_tokens

    probabilities = torch.tensor([[0.0, 0.0, 0.1, 0.9], [0.25, 0.25, 0.25, 0.25]])
    uniforms = torch.tensor([0.5, 0.9], dtype=torch.float64)

    tokens = sample_tokens(probabilities, uniforms, 0.6, candidates=(1,))

    # Row 0's nucleus is token 3. Row 1's is the first three tokens of a stable full sort.
    assert tokens[0] == 3
    assert tokens[1] in (0, 1, 2)


def test_sampling_widens_candidates_per_row():
    import torch

    # One candidate covers row 0, two cover row 1, and row 2 needs the full sort.
    probabilities = torch.tensor([[0.0, 0.0, 0.05, 0.95], [0.0, 0.5, 0.0, 0.5], [0.25, 0.25, 0.25, 0.25]])
    draws = 1000
    uniforms = ((torch.arange(draws, dtype=torch.float64) + 0.5) / draws).repeat(3)
    rows = probabilities.repeat_interleave(draws, dim=0)

    from xlsafety.generate import sample_tokens

    tokens = sample_tokens(rows, uniforms, 0.9, candidates=(1, 2)).view(3, draws)
    shares = [(torch.bincount(row, minlength=4) / draws).tolist() for row in tokens]

    assert shares[0] == pytest.approx([0.0, 0.0, 0.0, 1.0])
    assert shares[1] == pytest.approx([0.0, 0.5, 0.0, 0.5], abs=2e-3)
    assert shares[2] == pytest.approx([0.25, 0.25, 0.25, 0.25], abs=2e-3)


def test_candidate_counts_draw_same_tokens():
    import torch

    from xlsafety.generate import sample_tokens

    generator = torch.Generator().manual_seed(3)
    # Sharper rows further down, so that each count covers some rows and the full sort takes the rest.
    logits = torch.randn(64, 5000, generator=generator) * torch.linspace(1.5, 5.0, 64)[:, None]
    probabilities = torch.softmax(logits, dim=-1)
    uniforms = torch.rand(64, generator=generator, dtype=torch.float64)
    covered = [int((torch.topk(probabilities, count).values.sum(dim=-1) >= 0.9).sum()) for count in (8, 64, 512)]

    tiered = sample_tokens(probabilities, uniforms, 0.9, candidates=(8, 64, 512))
    single = sample_tokens(probabilities, uniforms, 0.9, candidates=(512,))
    sorted_only = sample_tokens(probabilities, uniforms, 0.9, candidates=())

    assert 0 < covered[0] < covered[1] < covered[2] < 64
    assert torch.equal(tiered, single)
    assert torch.equal(tiered, sorted_only)


def tiny_batch(tokenizer, texts):
    sent = [build_prompt(tokenizer, text, CHAT, None) for text in texts]
    return tokenizer(sent, return_tensors="pt", padding=True, add_special_tokens=False)


def greedy(logits, active):
    return logits.argmax(dim=-1)


def test_decode_loop_matches_generate(chat_model):
    import torch

    from xlsafety.backends.decode_loop import decode

    model, tokenizer = chat_model
    encoded = tiny_batch(tokenizer, ["Hi", "Write a long story about a fox and a bear.", "Tell me a secret."])
    with torch.inference_mode():
        expected = model.generate(**encoded, max_new_tokens=6, do_sample=False, eos_token_id=None,
                                  pad_token_id=tokenizer.pad_token_id)
        found = decode(model, encoded["input_ids"], encoded["attention_mask"], max_new_tokens=6,
                       choose=greedy, stop_ids=[])

    assert found == expected[:, encoded["input_ids"].shape[1] :].tolist()


def decode_in_groups(model, encoded, monkeypatch, group: int) -> tuple[list, list]:
    """Decode 4 greedy tokens with the prompts run in groups of `group` rows.

    Returns each step's logits and the tokens.
    """
    import torch

    from xlsafety.backends import decode_loop

    monkeypatch.setattr(decode_loop, "PREFILL_GROUP", group)
    seen = []

    def choose(logits, active):
        seen.append(logits.clone())
        return logits.argmax(dim=-1)

    with torch.inference_mode():
        tokens = decode_loop.decode(model, encoded["input_ids"], encoded["attention_mask"], max_new_tokens=4,
                                    choose=choose, stop_ids=[])
    return seen, tokens


def test_grouped_prefill_matches_whole_batch(chat_model, monkeypatch):
    import torch

    model, tokenizer = chat_model
    texts = ["Hi", "Write a long story about a fox and a bear in the woods at night.", "Tell me a secret.",
             "How do I pick a lock?", "Hello there, friend."]
    encoded = tiny_batch(tokenizer, texts)

    # Groups of 2 rows take the grouped path; one group of 100 is the whole batch in one pass.
    grouped, _ = decode_in_groups(model, encoded, monkeypatch, 2)
    whole, _ = decode_in_groups(model, encoded, monkeypatch, 100)

    assert len(grouped) == len(whole) == 4
    for step, (found, expected) in enumerate(zip(grouped, whole)):
        assert torch.allclose(found, expected, atol=1e-4), f"step {step}"


def test_greedy_batch_of_twelve_equals_single(chat_model):
    single = run(chat_model, prompts(12), GREEDY, batch_size=1)
    batched = run(chat_model, prompts(12), GREEDY, batch_size=12)

    assert batched["text"].tolist() == single["text"].tolist()


def test_decode_loop_drops_stopped_rows(chat_model):
    """A row that stops early leaves the batch, and the other rows still equal their one-at-a-time output."""
    import torch

    from xlsafety.backends.decode_loop import decode

    model, tokenizer = chat_model
    texts = ["Hi", "Write a long story about a fox and a bear.", "Tell me a secret.", "How do I pick a lock?"]
    with torch.inference_mode():
        alone = [decode(model, *tiny_batch(tokenizer, [text]).values(), max_new_tokens=6, choose=greedy,
                        stop_ids=[])[0] for text in texts]
        stop_id = alone[0][1]
        batched = decode(model, *tiny_batch(tokenizer, texts).values(), max_new_tokens=6, choose=greedy,
                         stop_ids=[stop_id])

    for tokens, single in zip(batched, alone):
        cut = single.index(stop_id) + 1 if stop_id in single else len(single)
        assert tokens == single[:cut]
    assert len(batched[0]) == 2


def test_decode_loop_text_stop(chat_model):
    import torch

    from xlsafety.backends.decode_loop import decode

    model, tokenizer = chat_model
    encoded = tiny_batch(tokenizer, ["Hi", "Tell me a secret."])
    with torch.inference_mode():
        found = decode(model, encoded["input_ids"], encoded["attention_mask"], max_new_tokens=8,
                       choose=greedy, stop_ids=[], text_stop=lambda tokens: len(tokens) == 3)

    assert [len(tokens) for tokens in found] == [3, 3]


def test_greedy_batch_of_four_equals_single(chat_model):
    frame = prompts(4)
    single = run(chat_model, frame, Decoding("greedy", 0.0, 1.0, 12, 1), batch_size=1)
    batched = run(chat_model, frame, Decoding("greedy", 0.0, 1.0, 12, 1), batch_size=4)

    assert batched[["text", "finish_reason", "completion_tokens"]].equals(
        single[["text", "finish_reason", "completion_tokens"]]
    )


def test_stop_id_ends_completion(chat_model, monkeypatch):
    import torch

    from xlsafety import generate
    from xlsafety.backends.decode_loop import decode

    model, tokenizer = chat_model
    frame = prompts(1)
    encoded = tiny_batch(tokenizer, frame["text"].tolist())
    with torch.inference_mode():
        free = decode(model, encoded["input_ids"], encoded["attention_mask"], max_new_tokens=6, choose=greedy,
                      stop_ids=[])[0]
    stop_id = free[1]

    monkeypatch.setattr(generate, "stop_token_ids", lambda model, tokenizer: [stop_id])
    stopped = run(chat_model, frame, Decoding("long", 0.0, 1.0, 6, 1), batch_size=1)

    assert stopped["finish_reason"][0] == "stop"
    assert stopped["completion_tokens"][0] == free.index(stop_id) + 1
    assert stopped["text"][0] == tokenizer.decode(free[: free.index(stop_id)], skip_special_tokens=True).strip()


def test_broken_trailing_character_removed(chat_model):
    from xlsafety.generate import _decode_completion

    _, tokenizer = chat_model
    tokens = tokenizer("ok 你好", add_special_tokens=False)["input_ids"]
    partial = next(count for count in range(1, len(tokens) + 1)
                   if tokenizer.decode(tokens[:count]).endswith("\ufffd"))
    completion = _decode_completion(tokenizer, tokens[:partial], 5, [], (), Decoding("g", 0.0, 1.0, partial, 1))

    assert not completion.text.endswith("\ufffd")
    assert completion.finish_reason == "length"


def test_auto_batch_size_generates_all_rows(chat_model):
    rows = run(chat_model, prompts(3), SAMPLED, batch_size="auto")
    single = run(chat_model, prompts(3), SAMPLED, batch_size=1)

    assert rows["text"].tolist() == single["text"].tolist()


def test_out_of_memory_halves_batch(chat_model, monkeypatch):
    from xlsafety import generate

    sizes = []
    original = generate.generate_batch

    def failing_above_two(model, tokenizer, texts, *arguments):
        sizes.append(len(texts))
        if len(texts) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(model, tokenizer, texts, *arguments)

    monkeypatch.setattr(generate, "generate_batch", failing_above_two)
    rows = run(chat_model, prompts(3), SAMPLED, batch_size=8)
    monkeypatch.undo()

    assert sizes[:3] == [8, 4, 2]
    assert len(rows) == 9
    assert rows["text"].tolist() == run(chat_model, prompts(3), SAMPLED, batch_size=1)["text"].tolist()


def test_other_errors_are_not_retried(chat_model, monkeypatch):
    from xlsafety import generate

    def broken(*arguments):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(generate, "generate_batch", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run(chat_model, prompts(2), GREEDY, batch_size=2)


def test_job_logs_tokens_per_second(chat_model, caplog):
    with caplog.at_level("INFO", logger="xlsafety.generate"):
        run(chat_model, prompts(2), GREEDY, batch_size=2)

    assert any("tokens/s" in record.getMessage() for record in caplog.records)
    assert any("request" in record.getMessage() and "|" in record.getMessage() for record in caplog.records)


def test_load_in_bfloat16(tiny_chat_model):
    import torch

    model, _ = load_prepared_model(str(tiny_chat_model), threads=1, device="cpu", dtype="bfloat16")

    assert model.dtype == torch.bfloat16
    assert model.device.type == "cpu"


def test_decode_loop_on_sliding_window_model():
    """Gemma 3 mixes sliding-window and full-attention layers; padded and stopped rows still match."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from xlsafety.backends.decode_loop import decode

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, sliding_window=4, layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=256, pad_token_id=0,
    )
    model = Gemma3ForCausalLM(config).eval()
    ids = torch.randint(3, 300, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    mask[1, :2] = 0
    ids[mask == 0] = 0

    with torch.inference_mode():
        expected = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=7, do_sample=False,
                                  eos_token_id=None, pad_token_id=0)[:, 9:].tolist()
        found = decode(model, ids, mask, max_new_tokens=7, choose=greedy, stop_ids=[])
        stop_id = expected[0][2]
        stopped = decode(model, ids, mask, max_new_tokens=7, choose=greedy, stop_ids=[stop_id])

    assert found == expected
    for tokens, full in zip(stopped, expected):
        cut = full.index(stop_id) + 1 if stop_id in full else len(full)
        assert tokens == full[:cut]


def test_shared_prefix_length_left_padded():
    import torch

    from xlsafety.backends.decode_loop import shared_prefix_length

    pad = 0
    input_ids = torch.tensor([
        [pad, pad, 7, 8, 9, 1],
        [7, 8, 9, 2, 3, 4],
        [pad, 7, 8, 9, 5, 6],
    ])
    lengths = (input_ids != pad).sum(dim=1)

    assert shared_prefix_length(input_ids, lengths) == 3
    assert shared_prefix_length(input_ids[1:], lengths[1:]) == 3
    # Every row keeps at least one token of its own.
    assert shared_prefix_length(input_ids[[1, 1]], lengths[[1, 1]]) == 5
    assert shared_prefix_length(torch.tensor([[pad, 5], [6, 5]]), torch.tensor([1, 2])) == 0


def test_shared_prefix_matches_whole_batch(chat_model, monkeypatch):
    import torch

    from xlsafety.backends import decode_loop

    model, tokenizer = chat_model
    texts = ["Hi", "Write a long story about a fox and a bear in the woods at night.", "Tell me a secret.",
             "How do I pick a lock?", "Hello there, friend."]
    sent = [build_prompt(tokenizer, text, CHAT, "You are a careful assistant who answers briefly.") for text in texts]
    encoded = tokenizer(sent, return_tensors="pt", padding=True, add_special_tokens=False)
    lengths = encoded["attention_mask"].sum(dim=1)
    assert decode_loop.shared_prefix_length(encoded["input_ids"], lengths) >= decode_loop.MIN_SHARED_PREFIX

    prefix_passes = []
    forward = model.forward

    def counting_forward(*args, **kwargs):
        if kwargs.get("attention_mask") is None:
            prefix_passes.append(kwargs["input_ids"].shape)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting_forward)
    grouped, grouped_tokens = decode_in_groups(model, encoded, monkeypatch, 2)
    whole, whole_tokens = decode_in_groups(model, encoded, monkeypatch, 100)

    assert len(prefix_passes) == 1
    assert prefix_passes[0][0] == 1
    assert grouped_tokens == whole_tokens
    for step, (found, expected) in enumerate(zip(grouped, whole)):
        assert torch.allclose(found, expected, atol=1e-4), f"step {step}"



def test_repeated_prompt_runs_once(chat_model, monkeypatch):
    import torch

    from xlsafety.backends import decode_loop

    model, tokenizer = chat_model
    texts = ["Tell me a secret.", "Tell me a secret.", "Hi", "How do I pick a lock?", "Hi", "Tell me a secret."]
    encoded = tiny_batch(tokenizer, texts)
    prompt_rows = []
    forward = model.forward

    def counting_forward(*args, **kwargs):
        # The shared prefix runs without a mask, and the prompts' own passes run with one.
        if kwargs["input_ids"].shape[1] > 1 and kwargs.get("attention_mask") is not None:
            prompt_rows.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting_forward)
    grouped, grouped_tokens = decode_in_groups(model, encoded, monkeypatch, 2)
    grouped_rows = sum(prompt_rows)
    whole, whole_tokens = decode_in_groups(model, encoded, monkeypatch, 100)

    # Three distinct prompts: the six rows' prompts run as three rows (the
    # whole-batch pass, without groups, runs all six).
    assert grouped_rows == 3
    assert grouped_tokens == whole_tokens
    for step, (found, expected) in enumerate(zip(grouped, whole)):
        assert torch.allclose(found, expected, atol=1e-4), f"step {step}"


def test_distinct_rows_tell_padding_apart():
    import torch

    from xlsafety.backends.decode_loop import distinct_rows

    # Rows 0 and 2 match; row 1 has the same ids as row 0 but one more real token.
    input_ids = torch.tensor([[0, 5, 6], [0, 5, 6], [0, 5, 6], [7, 8, 9]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 1, 1], [1, 1, 1]])

    distinct, copies = distinct_rows(input_ids, mask)

    assert distinct.tolist() == [0, 1, 3]
    assert copies[0].tolist() == [0, 2]
    assert copies[1].tolist() == [1]
    assert copies[3].tolist() == [3]


def test_passes_in_one_batch_equal_single_requests(chat_model):
    # One text under four ids: the twelve rows share one prompt, so the batch
    # runs it once, without padding, as each single request does. Prompts of
    # other lengths in one batch may differ in the last bits (module docstring of
    # xlsafety.generate).
    frame = pd.DataFrame({"id": range(4), "language": "en", "text": "Tell me a secret."})

    single = run(chat_model, frame, SAMPLED, batch_size=1)
    batched = run(chat_model, frame, SAMPLED, batch_size=12)

    assert batched["text"].tolist() == single["text"].tolist()
    assert batched["text"].nunique() > 1


@pytest.mark.parametrize("group", [2, 8])
def test_pooled_buffers_match_fresh_ones(chat_model, monkeypatch, group):
    import torch

    from xlsafety.backends import decode_loop

    model, tokenizer = chat_model
    monkeypatch.setattr(decode_loop, "PREFILL_GROUP", group)
    long_texts = ["Write a long story about a fox and a bear in the woods at night.", "Tell me a secret.",
                  "How do I pick a lock without a key?", "Hi"]
    short_texts = ["Hello", "Why?", "Tell me more."]
    pool = decode_loop.BufferPool()
    storage_used = []
    take = pool.take

    def recording_take(key, shape, like):
        tensor = take(key, shape, like)
        storage_used.append(tensor.untyped_storage().data_ptr())
        return tensor

    monkeypatch.setattr(pool, "take", recording_take)
    with torch.inference_mode():
        found = [decode_loop.decode(model, *tiny_batch(tokenizer, texts).values(), max_new_tokens=5, choose=greedy,
                                    stop_ids=[], pool=pool) for texts in (long_texts, short_texts)]
        fresh = [decode_loop.decode(model, *tiny_batch(tokenizer, texts).values(), max_new_tokens=5, choose=greedy,
                                    stop_ids=[]) for texts in (long_texts, short_texts)]

    assert found == fresh
    # The second, shorter batch writes into the memory of the first.
    half = len(storage_used) // 2
    assert storage_used[half:] == storage_used[:half]


def test_requests_start_with_longest_prompt(chat_model):
    _, tokenizer = chat_model
    texts = ["Hi", "A much longer prompt than the others.", "Why?"]
    frame = pd.DataFrame({"id": [0, 1, 2], "language": "en", "text": texts})

    _, requests = build_requests(frame, tokenizer, configuration="c", decoding=GREEDY, prompt_format=CHAT,
                                 study_seed=0)
    lengths = [request[0] for request in requests]

    assert lengths == sorted(lengths, reverse=True)
    assert requests[0][1] == 1
