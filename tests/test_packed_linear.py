import logging

import pytest
import torch

from xlsafety.backends import packed_linear
from xlsafety.backends.packed_linear import PackedLinear, pack_linear_layers

needs_packing = pytest.mark.skipif(not packed_linear.packing_available(), reason="torch has no oneDNN packing")


def tiny_model(dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=300, tie_word_embeddings=True)
    return LlamaForCausalLM(config).to(dtype).eval()


@needs_packing
def test_packed_layer_matches_linear():
    linear = torch.nn.Linear(64, 96, bias=True).to(torch.bfloat16)
    inputs = torch.randn(3, 5, 64, dtype=torch.bfloat16)

    packed = PackedLinear(linear, batch_size=8)

    expected = torch.nn.functional.linear(inputs.float(), linear.weight.float(), linear.bias.float())
    assert packed(inputs).shape == (3, 5, 96)
    assert torch.allclose(packed(inputs).float(), expected, atol=0.05, rtol=0.02)


@needs_packing
def test_bfloat16_model_packed_with_same_parameters():
    model = tiny_model(torch.bfloat16)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    ids = torch.randint(0, 300, (2, 7))
    with torch.inference_mode():
        expected = model(input_ids=ids).logits.float()

    replaced = pack_linear_layers(model)
    with torch.inference_mode():
        found = model(input_ids=ids).logits.float()

    # Two layers of 7 projections each, and the output layer.
    assert replaced == 15
    assert not any(type(module) is torch.nn.Linear for module in model.modules())
    assert sum(parameter.numel() for parameter in model.parameters()) == parameters
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert torch.allclose(found, expected, atol=0.05, rtol=0.05)


@needs_packing
def test_packed_rows_do_not_depend_on_batch():
    model = tiny_model(torch.bfloat16)
    pack_linear_layers(model)
    ids = torch.randint(0, 300, (4, 6))

    with torch.inference_mode():
        batch = model(input_ids=ids).logits
        single = torch.cat([model(input_ids=ids[row : row + 1]).logits for row in range(4)])

    assert torch.equal(batch, single)


def test_float32_model_left_unpacked():
    model = tiny_model(torch.float32)

    assert pack_linear_layers(model) == 0
    assert type(model.lm_head) is torch.nn.Linear


def test_missing_operators_leave_model_unpacked(monkeypatch, caplog):
    monkeypatch.setattr(packed_linear, "packing_available", lambda: False)
    model = tiny_model(torch.bfloat16)

    with caplog.at_level(logging.INFO, logger="xlsafety.backends.packed_linear"):
        replaced = pack_linear_layers(model)

    assert replaced == 0
    assert type(model.lm_head) is torch.nn.Linear
    assert "cannot pack" in caplog.text


@needs_packing
def test_bfloat16_cpu_load_packs_layers(tiny_chat_model, tmp_path):
    from xlsafety.generate import load_prepared_model
    from xlsafety.models import prepare_model

    prepare_model(str(tiny_chat_model), tmp_path / "prepared")

    packed, _ = load_prepared_model(str(tmp_path / "prepared"), threads=1, device="cpu", dtype="bfloat16")
    plain, _ = load_prepared_model(str(tmp_path / "prepared"), threads=1, device="cpu", dtype="float32")

    assert isinstance(packed.lm_head, PackedLinear)
    assert type(plain.lm_head) is torch.nn.Linear
