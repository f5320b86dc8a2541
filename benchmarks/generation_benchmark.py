"""Benchmark: tokens per second of the transformers backend on SmolLM2-135M-Instruct.

Runs, in one process and on the same prompts (the embedded prompts in all ten
languages, sent through the chat template):

  limit:  the matmul-bound rate, the fp32 GFLOP/s of a large torch matmul
          divided by 2 x the model's parameters per generated token,
  ours:   xlsafety.generate.generate_language (length-sorted batches and the
          decode loop of xlsafety.backends.decode_loop), per batch size,
  hf:     `generate` on length-sorted batches (the earlier implementation),
  naive:  `generate` called on one prompt at a time.

Every completion is forced to exactly --new-tokens tokens (no stop ids), so
all methods do the same work. Decoding is greedy. With --passes N every
prompt is sampled N times (temperature 0.7, top-p 0.9, the study's `standard`
variant) by every method. --dtype bfloat16 runs every method, and the matmul
of the limit, in bfloat16, and also prints each rate's share of the float32
limit, the common reference of both dtypes. The matmul is measured at the
start and at the end, because other processes on a shared machine change the
rate during the run, and the shares are of the higher of the two limits.
Compare ratios within one run. The script also times the
load of the prepared checkpoint, and of the GGUF file it was prepared from
(--gguf-load). --breakdown reruns ours with timers on matrix products and
attention, and prints the rate those two alone would allow.

    .venv/bin/python benchmarks/generation_benchmark.py                    # the full run (about 15 min on 2 cores)
    .venv/bin/python benchmarks/generation_benchmark.py --naive-prompts 8  # naive loop on 8 prompts only
    .venv/bin/python benchmarks/generation_benchmark.py --passes 2         # 2 sampled passes per prompt
    .venv/bin/python benchmarks/generation_benchmark.py --breakdown        # also time matmul and attention
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

MODEL_SOURCE = "embedded:smollm2-135m-instruct"
LANGUAGES = ("en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv")
# The sampled decoding of --passes above 1: the study's `standard` variant.
SAMPLED_TEMPERATURE = 0.7
SAMPLED_TOP_P = 0.9


def main() -> None:
    arguments = parse_arguments()
    logging.basicConfig(level=logging.WARNING)

    import torch
    from transformers.utils import logging as transformers_logging

    # The weight-loading progress bars would break up the printed results.
    transformers_logging.disable_progress_bar()
    torch.set_num_threads(arguments.threads)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = arguments.model_dir or prepare(Path(scratch) / "smollm2")
        # The first load also imports transformers' model and tokenizer code, which every backend pays.
        _, _, first_s = load(model_dir, arguments.threads, arguments.dtype)
        model, tokenizer, load_s = load(model_dir, arguments.threads, arguments.dtype)
        print(f"threads {torch.get_num_threads()}, torch {torch.__version__}, {arguments.dtype}, "
              f"{arguments.passes} pass(es) per prompt; prepared checkpoint loaded in "
              f"{load_s:.2f} s ({first_s:.2f} s the first time in this process)")
        if arguments.gguf_load:
            print(f"the GGUF file loads in {gguf_load_seconds(Path(scratch)):.2f} s")
        run(arguments, model, tokenizer)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's layout and shows each option's default."""


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--model-dir",
                        help="a prepared SmolLM2 folder; without it, one is prepared in a temporary folder")
    parser.add_argument("--prompts", type=int, default=192,
                        help="prompts per method (at most 200); the backend sorts them by length into batches")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per prompt")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="dtype of the model and of the limit's matmul")
    parser.add_argument("--passes", type=int, default=1,
                        help="requests per prompt; above 1 every method samples instead of decoding greedily")
    parser.add_argument("--batch-sizes", default="32,64,96", help="comma-separated batch sizes of ours")
    parser.add_argument("--hf-batch-size", type=int, default=16, help="batch size of the `generate` baseline; 0 skips it")
    parser.add_argument("--naive-prompts", type=int, default=0,
                        help="prompts of the one-at-a-time loop (its rate does not depend on the count); 0: all")
    parser.add_argument("--matmul-size", type=int, default=4096,
                        help="side of the square matmul of the limit, in --dtype (and in float32 as well)")
    parser.add_argument("--gguf-load", action="store_true", help="also time loading the GGUF file")
    parser.add_argument("--breakdown", action="store_true",
                        help="rerun ours at the first batch size with timers on matrix products and attention")
    return parser.parse_args()


def prepare(model_dir: Path) -> str:
    from xlsafety.models import prepare_model

    started = time.perf_counter()
    prepare_model(MODEL_SOURCE, model_dir)
    print(f"prepared {MODEL_SOURCE} in {time.perf_counter() - started:.1f} s")
    return str(model_dir)


def load(model_dir: str, threads: int, dtype: str = "float32"):
    from xlsafety.generate import load_prepared_model

    started = time.perf_counter()
    model, tokenizer = load_prepared_model(model_dir, threads, device="cpu", dtype=dtype)
    return model, tokenizer, time.perf_counter() - started


def gguf_load_seconds(scratch: Path) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    from xlsafety.models import EMBEDDED_MODELS, embedded_gguf

    path = embedded_gguf(EMBEDDED_MODELS["smollm2-135m-instruct"], scratch)
    started = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return time.perf_counter() - started


def benchmark_prompts(count: int) -> pd.DataFrame:
    """Return `count` embedded prompts, taking every language of one prompt before the next prompt."""
    from importlib.resources import files

    table = pd.read_csv(files("xlsafety") / "data" / "embedded_prompts.csv")
    texts = [table[language][index] for index in range(len(table)) for language in LANGUAGES]
    if count > len(texts):
        raise SystemExit(f"--prompts {count}: only {len(texts)} embedded prompts exist")
    return pd.DataFrame({"id": range(count), "language": "mixed", "text": texts[:count]})


def matmul_gflops(size: int, dtype: str = "float32", repeats: int = 3) -> float:
    """Return the best GFLOP/s of `repeats` square matmuls of side `size` in `dtype`."""
    import torch

    left, right = (torch.randn(size, size, dtype=getattr(torch, dtype)) for _ in range(2))
    left @ right
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        left @ right
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def limit_rate(gflops: float, parameters: int) -> float:
    """Return the matmul-bound tokens per second: `gflops` divided by 2 x `parameters` FLOP per token."""
    return gflops * 1e9 / (2 * parameters)


def run(arguments: argparse.Namespace, model, tokenizer) -> None:
    prompts = benchmark_prompts(arguments.prompts)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    passes = arguments.passes
    gflops_before = matmul_gflops(arguments.matmul_size, arguments.dtype)
    limit = limit_rate(gflops_before, parameters)
    print(f"{len(prompts)} prompts x {passes} pass(es) x {arguments.new_tokens} new tokens; "
          f"{parameters / 1e6:.1f} M parameters")
    print(f"matmul {gflops_before:.0f} GFLOP/s -> limit {limit:.0f} tokens/s")
    # The float32 limit is the common reference of every dtype, so a bfloat16 run measures it too.
    float32_limit = None
    if arguments.dtype != "float32":
        float32_limit = limit_rate(matmul_gflops(arguments.matmul_size, "float32"), parameters)
        print(f"float32 matmul -> float32 limit {float32_limit:.0f} tokens/s")

    # The first forward passes of a process allocate buffers and thread pools; keep them out of the timings.
    ours(model, tokenizer, prompts.head(8), 4, 8, passes)
    naive(model, tokenizer, prompts.head(1), 4, passes)

    results = {}
    texts = {}
    for batch_size in [int(size) for size in arguments.batch_sizes.split(",")]:
        rate, texts[batch_size] = ours(model, tokenizer, prompts, arguments.new_tokens, batch_size, passes)
        results[f"ours, batch {batch_size}"] = rate
        print(f"ours, batch {batch_size}: {rate:.1f} tokens/s", flush=True)
    if arguments.hf_batch_size:
        rate = hf_generate(model, tokenizer, prompts, arguments.new_tokens, arguments.hf_batch_size, passes)
        results[f"generate, batch {arguments.hf_batch_size}"] = rate
        print(f"generate, batch {arguments.hf_batch_size}: {rate:.1f} tokens/s", flush=True)
    naive_count = arguments.naive_prompts or len(prompts)
    naive_rate, naive_texts = naive(model, tokenizer, prompts.head(naive_count), arguments.new_tokens, passes)
    results[f"naive, {naive_count} prompts"] = naive_rate

    gflops_after = matmul_gflops(arguments.matmul_size, arguments.dtype)
    print(f"matmul at the end {gflops_after:.0f} GFLOP/s -> limit {limit_rate(gflops_after, parameters):.0f} tokens/s")
    # The higher of the two measurements is what the machine reached, so a slow one does not raise the shares.
    limit = max(limit, limit_rate(gflops_after, parameters))
    if float32_limit is not None:
        float32_after = limit_rate(matmul_gflops(arguments.matmul_size, "float32"), parameters)
        print(f"float32 matmul at the end -> float32 limit {float32_after:.0f} tokens/s")
        float32_limit = max(float32_limit, float32_after)
    print()
    print(f"shares are of the higher limit measured: {limit:.0f} tokens/s"
          + (f", float32 {float32_limit:.0f}" if float32_limit is not None else ""))
    print_table(results, naive_rate, limit, float32_limit)
    if arguments.breakdown:
        batch_size = int(arguments.batch_sizes.split(",")[0])
        print_breakdown(model, tokenizer, prompts, arguments.new_tokens, batch_size, passes, naive_rate)
    if passes > 1:
        # Sampled rows draw from other random streams in each method, so their texts differ.
        return
    for batch_size, batched in texts.items():
        same = sum(a == b for a, b in zip(batched[:naive_count], naive_texts))
        print(f"ours, batch {batch_size}: {same}/{naive_count} texts equal to the one-at-a-time loop")


def print_table(results: dict[str, float], naive_rate: float, limit: float, float32_limit: float | None) -> None:
    """Print each method's rate against the naive loop and the limit (and the float32 limit, when measured)."""
    extra = " share of the float32 limit |" if float32_limit else ""
    print(f"| method | tokens/s | x naive | share of limit |{extra}")
    print("|---|---|---|---|" + ("---|" if float32_limit else ""))
    for name, rate in results.items():
        extra = f" {rate / float32_limit:.2f} |" if float32_limit else ""
        print(f"| {name} | {rate:.1f} | {rate / naive_rate:.1f} | {rate / limit:.2f} |{extra}")


def print_breakdown(model, tokenizer, prompts: pd.DataFrame, new_tokens: int, batch_size: int, passes: int,
                    naive_rate: float) -> None:
    """Rerun ours with timers on torch's linear and attention functions, and print the rate they alone allow.

    Every matrix product of the model runs in `linear` (or in a packed
    bfloat16 layer) and all attention in `scaled_dot_product_attention`, so
    the rate computed from their time is what this implementation could
    reach if everything else took no time. The timers add a little time of
    their own to the total.
    """
    import torch.nn.functional as functional

    from xlsafety.backends.packed_linear import PackedLinear

    spent = {"linear": 0.0, "scaled_dot_product_attention": 0.0}
    originals = {name: getattr(functional, name) for name in spent}
    packed_forward = PackedLinear.forward

    def timed(name, function):
        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
        return call

    for name, function in originals.items():
        setattr(functional, name, timed(name, function))
    PackedLinear.forward = timed("linear", packed_forward)
    try:
        started = time.perf_counter()
        rate, _ = ours(model, tokenizer, prompts, new_tokens, batch_size, passes)
        total = time.perf_counter() - started
    finally:
        for name, function in originals.items():
            setattr(functional, name, function)
        PackedLinear.forward = packed_forward

    tokens = rate * total
    kernels = spent["linear"] + spent["scaled_dot_product_attention"]
    print(f"breakdown, ours at batch {batch_size}: {total:.1f} s in all, {spent['linear']:.1f} s in matrix products, "
          f"{spent['scaled_dot_product_attention']:.1f} s in attention, {total - kernels:.1f} s in the rest")
    print(f"with the rest at no cost: {tokens / kernels:.1f} tokens/s, {tokens / kernels / naive_rate:.1f} x naive")


def ours(model, tokenizer, prompts: pd.DataFrame, new_tokens: int, batch_size: int,
         passes: int = 1) -> tuple[float, list[str]]:
    """Run the transformers backend's generation with every stop id removed, so each row has `new_tokens` tokens."""
    from xlsafety import generate

    if passes == 1:
        decoding = generate.Decoding("greedy", 0.0, 1.0, new_tokens, 1)
    else:
        decoding = generate.Decoding("standard", SAMPLED_TEMPERATURE, SAMPLED_TOP_P, new_tokens, passes)
    original = generate.stop_token_ids
    generate.stop_token_ids = lambda model, tokenizer: []
    try:
        started = time.perf_counter()
        rows = generate.generate_language(
            prompts, model, tokenizer, configuration="bench_greedy", model_name="bench", decoding=decoding,
            prompt_format=generate.PromptFormat("chat"), study_seed=0, batch_size=batch_size, model_identity="{}",
        )
        elapsed = time.perf_counter() - started
    finally:
        generate.stop_token_ids = original
    return int(rows["completion_tokens"].sum()) / elapsed, rows["text"].tolist()


def hf_generate(model, tokenizer, prompts: pd.DataFrame, new_tokens: int, batch_size: int, passes: int = 1) -> float:
    """Run `generate` on length-sorted, left-padded batches, with each prompt `passes` times."""
    import torch

    sent = chat_prompts(tokenizer, prompts) * passes
    sent.sort(key=lambda text: len(tokenizer(text)["input_ids"]))
    config = forced_length_config(tokenizer, new_tokens, passes > 1)
    started = time.perf_counter()
    generated = 0
    for start in range(0, len(sent), batch_size):
        encoded = tokenizer(sent[start : start + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False)
        with torch.inference_mode():
            output = model.generate(**encoded, generation_config=config)
        generated += (output.shape[1] - encoded["input_ids"].shape[1]) * output.shape[0]
    return generated / (time.perf_counter() - started)


def naive(model, tokenizer, prompts: pd.DataFrame, new_tokens: int, passes: int = 1) -> tuple[float, list[str]]:
    """Call `generate` on one prompt at a time, `passes` times per prompt."""
    import torch

    config = forced_length_config(tokenizer, new_tokens, passes > 1)
    texts = []
    generated = 0
    started = time.perf_counter()
    for text in [text for text in chat_prompts(tokenizer, prompts) for _ in range(passes)]:
        encoded = tokenizer([text], return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            output = model.generate(**encoded, generation_config=config)
        new = output[0, encoded["input_ids"].shape[1] :]
        generated += len(new)
        texts.append(tokenizer.decode(new, skip_special_tokens=True).rstrip("\ufffd").strip())
    return generated / (time.perf_counter() - started), texts


def chat_prompts(tokenizer, prompts: pd.DataFrame) -> list[str]:
    return [tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                          add_generation_prompt=True) for text in prompts["text"]]


def forced_length_config(tokenizer, new_tokens: int, sampled: bool = False):
    from transformers import GenerationConfig

    # No eos id, so that `generate` always produces `new_tokens` tokens.
    if sampled:
        return GenerationConfig(max_new_tokens=new_tokens, do_sample=True, temperature=SAMPLED_TEMPERATURE,
                                top_p=SAMPLED_TOP_P, top_k=0, eos_token_id=None, pad_token_id=tokenizer.pad_token_id)
    return GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=None,
                            pad_token_id=tokenizer.pad_token_id)


if __name__ == "__main__":
    main()
