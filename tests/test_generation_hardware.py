"""Device, dtype and batch size selection of local models.

No GPU is available where these tests run, so CUDA is simulated by patching
torch.cuda's availability checks and the free-memory query.
"""

import pytest
import torch

from xlsafety.backends import hardware
from xlsafety.errors import ConfigError


@pytest.fixture
def with_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)


@pytest.fixture
def without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_device_takes_gpu(with_gpu):
    assert hardware.select_device("auto") == "cuda"


def test_auto_device_falls_back_to_cpu(without_gpu):
    assert hardware.select_device("auto") == "cpu"


def test_cuda_without_gpu_rejected(without_gpu):
    with pytest.raises(ConfigError, match="generation.device.*no CUDA device"):
        hardware.select_device("cuda")


def test_unknown_device_rejected():
    with pytest.raises(ConfigError, match="generation.device"):
        hardware.select_device("tpu")


def test_auto_dtype_bfloat16_on_gpu(with_gpu):
    assert hardware.select_dtype("auto", "cuda") == torch.bfloat16


def test_auto_dtype_float32_on_old_gpu(with_gpu, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)

    assert hardware.select_dtype("auto", "cuda") == torch.float32


def test_auto_dtype_float32_on_cpu():
    assert hardware.select_dtype("auto", "cpu") == torch.float32


@pytest.mark.parametrize("amx", [True, False])
def test_auto_dtype_stays_float32_on_amx_cpu(monkeypatch, caplog, amx):
    monkeypatch.setattr(hardware, "has_amx", lambda: amx)

    with caplog.at_level("INFO", logger="xlsafety.backends.hardware"):
        dtype = hardware.select_dtype("auto", "cpu")

    assert dtype is torch.float32
    assert ("dtype: bfloat16" in caplog.text) is amx


def test_has_amx_without_torch_check(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)

    assert hardware.has_amx() is False


def test_explicit_dtype_kept():
    assert hardware.select_dtype("float16", "cuda") == torch.float16
    assert hardware.select_dtype("bfloat16", "cpu") == torch.bfloat16


def test_unknown_dtype_rejected():
    with pytest.raises(ConfigError, match="generation.dtype"):
        hardware.select_dtype("int8", "cpu")


def llama_config(**changes):
    from transformers import LlamaConfig

    settings = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                    num_attention_heads=8, num_key_value_heads=2)
    return LlamaConfig(**{**settings, **changes})


def test_bytes_per_row_counts_cache():
    config = llama_config()
    # Keys and values: 2 x 4 layers x 2 kv heads x 8 dims x 30 positions x 4 bytes.
    cache = 2 * 4 * 2 * 8 * 30 * 4
    activations = 10 * (3 * 128 + 4 * 64) * 4
    logits = 4 * 1000 * 4

    assert hardware.bytes_per_row(config, 10, 20, 4) == cache + activations + logits


def test_auto_batch_size_fits_memory(monkeypatch):
    config = llama_config()
    per_row = hardware.bytes_per_row(config, 10, 20, 4)
    monkeypatch.setattr(hardware, "free_memory_bytes", lambda device: 2 * 5 * per_row)

    assert hardware.auto_batch_size(config, "cpu", 4, 10, 20) == 5


def test_auto_batch_size_capped_per_device(monkeypatch):
    monkeypatch.setattr(hardware, "free_memory_bytes", lambda device: 10**15)

    assert hardware.auto_batch_size(llama_config(), "cpu", 4, 10, 20) == hardware.MAX_AUTO_BATCH["cpu"]
    assert hardware.auto_batch_size(llama_config(), "cuda", 2, 10, 20) == hardware.MAX_AUTO_BATCH["cuda"]


def test_auto_batch_size_at_least_one(monkeypatch):
    monkeypatch.setattr(hardware, "free_memory_bytes", lambda device: 1)

    assert hardware.auto_batch_size(llama_config(), "cuda", 2, 10, 20) == 1


def test_gpu_free_memory_queried_from_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (3 * 2**30, 80 * 2**30))

    assert hardware.free_memory_bytes("cuda") == 3 * 2**30


@pytest.mark.parametrize("error, expected", [
    (torch.OutOfMemoryError("CUDA out of memory"), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), True),
    (RuntimeError("shape mismatch"), False),
    (ValueError("out of memory"), False),
])
def test_out_of_memory_recognised(error, expected):
    assert hardware.is_out_of_memory(error) is expected


def test_backend_precision_names_device_and_dtype(tiny_chat_model, without_gpu, tmp_path):
    from xlsafety.backends import create_backend
    from xlsafety.models import prepare_model

    prepare_model(str(tiny_chat_model), tmp_path / "prepared")
    backend = create_backend("transformers", "tiny", {}, model_dir=str(tmp_path / "prepared"), threads=1,
                             batch_size="auto")

    assert backend.precision == "cpu float32"
