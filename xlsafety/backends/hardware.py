"""Device, dtype and batch size of local models.

`auto` settings choose CUDA with bfloat16 when a GPU is present and the CPU
with float32 otherwise, and a batch size from the free memory and the size of
the model's key/value cache.
"""

import logging

from xlsafety.errors import ConfigError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")

# Share of the free memory that the batch's cache and activations may use. The rest is
# left to the allocator's overhead, to other jobs on the machine and to estimation error.
MEMORY_SHARE = 0.5

# Upper bounds of an automatic batch size. A larger batch loses more work when a job is
# killed mid-batch. On 2 CPU cores, SmolLM2-135M generated as fast at batch 128 as at 96
# with greedy decoding (281 and 286 tokens/s, benchmarks/generation_benchmark.py). With two
# sampled passes per prompt, whose rows share their prompt's forward pass, 128 was 7% faster
# (361 and 339). NOTE: the CUDA bound is an estimate, not measured on a GPU.
MAX_AUTO_BATCH = {"cpu": 128, "cuda": 256}


def select_device(requested: str) -> str:
    """Return the torch device for a `generation.device` value: `auto` takes CUDA when available."""
    import torch

    if requested not in DEVICES:
        raise ConfigError(f"config key generation.device: {requested!r} is not one of {list(DEVICES)}")
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "config key generation.device: 'cuda' was requested but torch finds no CUDA device; "
            "set device: auto or cpu, or run the job on a GPU node"
        )
    return requested


def select_dtype(requested: str, device: str):
    """Return the torch dtype for a `generation.dtype` value on `device`.

    `auto` is bfloat16 on a GPU that supports it and float32 otherwise:
    float32 on the CPU keeps greedy batches equal to one-at-a-time generation,
    and gives the same text on every CPU. On a CPU with AMX units, where
    bfloat16 is faster, `auto` stays float32 and logs that bfloat16 is available.
    """
    import torch

    if requested not in DTYPES:
        raise ConfigError(f"config key generation.dtype: {requested!r} is not one of {list(DTYPES)}")
    if requested == "auto":
        if device == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if device == "cpu" and has_amx():
            log.info("this CPU has AMX units: generation.dtype: bfloat16 generates about twice as fast here, "
                     "with other text than float32 (config/README.md)")
        return torch.float32
    return getattr(torch, requested)


def has_amx() -> bool:
    """Tell whether the CPU has AMX tile units, which run bfloat16 matrix products several times faster."""
    import torch

    # This function of torch.cpu is private, so a torch build without it counts as a CPU without AMX.
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check is not None and check())


def free_memory_bytes(device: str) -> int:
    """Return the memory available for new tensors on `device`."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)

    import psutil

    return int(psutil.virtual_memory().available)


def bytes_per_row(config, prompt_tokens: int, max_new_tokens: int, element_bytes: int) -> int:
    """Estimate the memory one batch row needs: its key/value cache and its largest activations.

    The cache contains the keys and values of every layer for the prompt and the
    completion. The largest activations are the MLP's intermediate tensors
    during the prompt's forward pass and the float32 copies of the vocabulary
    logits made when sampling.
    """
    config = config.get_text_config(decoder=True)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    positions = prompt_tokens + max_new_tokens

    cache = 2 * config.num_hidden_layers * kv_heads * head_dim * positions * element_bytes
    prompt_activations = prompt_tokens * (3 * config.intermediate_size + 4 * config.hidden_size) * element_bytes
    logits = 4 * config.vocab_size * 4
    return cache + prompt_activations + logits


def auto_batch_size(config, device: str, element_bytes: int, prompt_tokens: int, max_new_tokens: int) -> int:
    """Choose a batch size that fits `MEMORY_SHARE` of the free memory, at most `MAX_AUTO_BATCH[device]`."""
    per_row = bytes_per_row(config, prompt_tokens, max_new_tokens, element_bytes)
    budget = MEMORY_SHARE * free_memory_bytes(device)
    size = max(1, min(MAX_AUTO_BATCH[device], int(budget // per_row)))
    log.info("automatic batch size %d: %.1f MB per row, %.0f MB budget on %s",
             size, per_row / 1e6, budget / 1e6, device)
    return size


def is_out_of_memory(error: BaseException) -> bool:
    """Tell whether `error` is a failed allocation of the CPU or CUDA allocator."""
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and (
        "out of memory" in message or "can't allocate memory" in message
    )
