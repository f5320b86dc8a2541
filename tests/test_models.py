import json

import numpy as np
import pytest

from xlsafety.errors import ModelError
from xlsafety.models import (
    EMBEDDED_MODELS,
    _hub_hint,
    check_gguf_supported,
    embedded_model,
    gguf_architecture,
    prepare_model,
    read_identity,
)


def write_gguf(path, architecture):
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_architecture_read_from_metadata(tmp_path):
    path = write_gguf(tmp_path / "llama.gguf", "llama")

    assert gguf_architecture(path) == "llama"
    assert check_gguf_supported(path) == "llama"


def test_unsupported_architecture_named(tmp_path):
    path = write_gguf(tmp_path / "odd.gguf", "madeupformer")

    with pytest.raises(ModelError, match=r"architecture 'madeupformer' is not supported by transformers"):
        check_gguf_supported(path)


def test_unsupported_gguf_rejected_before_loading(tmp_path):
    path = write_gguf(tmp_path / "odd.gguf", "madeupformer")

    with pytest.raises(ModelError, match="madeupformer"):
        prepare_model(str(path), tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def test_missing_gguf_file_named(tmp_path):
    with pytest.raises(ModelError, match="absent.gguf not found"):
        prepare_model(str(tmp_path / "absent.gguf"), tmp_path / "prepared")


def test_unknown_embedded_model_named():
    with pytest.raises(ModelError, match="unknown embedded model 'nope'"):
        embedded_model("embedded:nope")


def test_hub_ids_are_not_embedded():
    assert embedded_model("HuggingFaceTB/SmolLM2-135M-Instruct") is None
    assert embedded_model("embedded:gemma3-270m") is EMBEDDED_MODELS["gemma3-270m"]


def test_prepare_local_checkpoint(tmp_path, tiny_chat_model):
    identity = prepare_model(str(tiny_chat_model), tmp_path / "prepared")

    assert (tmp_path / "prepared" / "model.safetensors").exists()
    assert identity["architecture"] == "llama"
    assert identity["has_chat_template"] is True
    assert read_identity(tmp_path / "prepared") == json.loads(json.dumps(identity))


def test_unprepared_folder_named(tmp_path):
    with pytest.raises(ModelError, match="not a prepared model"):
        read_identity(tmp_path)


@pytest.mark.slow
def test_prepared_embedded_model_matches_gguf(tmp_path):
    """The safetensors checkpoint gives the same greedy tokens as the GGUF file it came from."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from xlsafety.models import embedded_gguf

    prepare_model("embedded:smollm2-135m-instruct", tmp_path / "prepared")
    gguf_path = embedded_gguf(EMBEDDED_MODELS["smollm2-135m-instruct"], tmp_path)
    original = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    prepared = AutoModelForCausalLM.from_pretrained(tmp_path / "prepared", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "prepared")

    encoded = tokenizer(["How do I open a locked door?"], return_tensors="pt")
    with torch.inference_mode():
        expected = original.generate(**encoded, max_new_tokens=12, do_sample=False)
        found = prepared.generate(**encoded, max_new_tokens=12, do_sample=False)

    assert torch.equal(found, expected)
    assert read_identity(tmp_path / "prepared")["has_chat_template"] is True


def forbid_gguf_loading(monkeypatch):
    """Make every GGUF load in transformers fail, so that a test notices one."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    def refuse(*arguments, **keywords):
        raise AssertionError("a prepared model must load without reading a GGUF file")

    monkeypatch.setattr(gguf_utils, "load_gguf_checkpoint", refuse)


def test_prepared_checkpoint_loads_without_gguf(tmp_path, tiny_chat_model, monkeypatch):
    from xlsafety.generate import load_prepared_model

    prepare_model(str(tiny_chat_model), tmp_path / "prepared")
    forbid_gguf_loading(monkeypatch)
    model, tokenizer = load_prepared_model(str(tmp_path / "prepared"), threads=1)

    assert not list((tmp_path / "prepared").rglob("*.gguf"))
    assert model.config.model_type == "llama"
    assert tokenizer.padding_side == "left"


@pytest.mark.slow
def test_prepared_embedded_model_is_safetensors(tmp_path, monkeypatch):
    """Preparing the embedded GGUF model leaves safetensors only, which load without dequantising."""
    from xlsafety.generate import load_prepared_model

    prepare_model("embedded:smollm2-135m-instruct", tmp_path / "prepared")
    forbid_gguf_loading(monkeypatch)
    model, _ = load_prepared_model(str(tmp_path / "prepared"), threads=1)

    assert (tmp_path / "prepared" / "model.safetensors").exists()
    assert not list((tmp_path / "prepared").rglob("*.gguf"))
    assert sum(parameter.numel() for parameter in model.parameters()) > 100_000_000
    assert "quantization_config" not in json.loads((tmp_path / "prepared" / "config.json").read_text())
    assert getattr(model, "hf_quantizer", None) is None


def test_old_checkpoint_loads_without_quantizer(tmp_path, tiny_chat_model):
    """A checkpoint whose config still names its GGUF file loads as the plain dense model it is."""
    from xlsafety.generate import load_prepared_model

    prepare_model(str(tiny_chat_model), tmp_path / "prepared")
    config_path = tmp_path / "prepared" / "config.json"
    config = json.loads(config_path.read_text())
    config["quantization_config"] = {"quant_method": "gguf", "gguf_file": "model.gguf", "dequantize": False}
    config_path.write_text(json.dumps(config))

    model, _ = load_prepared_model(str(tmp_path / "prepared"), threads=1)

    assert getattr(model, "hf_quantizer", None) is None
    assert not hasattr(model.config, "quantization_config")


def test_only_gguf_quantization_is_dropped():
    from transformers import LlamaConfig

    from xlsafety.models import drop_gguf_quantization

    gguf = LlamaConfig(quantization_config={"quant_method": "gguf", "gguf_file": "model.gguf"})
    other = LlamaConfig(quantization_config={"quant_method": "bitsandbytes", "load_in_8bit": True})
    drop_gguf_quantization(gguf)
    drop_gguf_quantization(other)

    assert not hasattr(gguf, "quantization_config")
    assert other.quantization_config["quant_method"] == "bitsandbytes"


def test_missing_relative_source_hint_names_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "present").mkdir()

    hint = _hub_hint("models/smol", "models/smol")

    assert "taken for a Hugging Face hub id" in hint
    assert "starting with ./ or /" in hint
    assert _hub_hint("present", "present") == ""
    assert _hub_hint("x.gguf", tmp_path) == ""
