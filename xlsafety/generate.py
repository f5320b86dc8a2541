"""Generation with the transformers backend: batched, seeded, one row per (prompt, pass).

This module also contains what every backend shares: `Decoding`, `PromptFormat`,
`row_seed`, resuming from a checkpoint (`resumed_rows`) and the final table
layout (`generations_frame`). The backends themselves are registered by name
in `xlsafety.backends`.

Local models decode with the loop in `xlsafety.backends.decode_loop`. Sampling
is done per row by `make_token_chooser`, with one random generator per row
seeded from (study seed, configuration, language, prompt id, pass). A row's
text therefore depends on its own seed and not on which rows share its batch
(up to floating-point differences that padding can cause), and raising the
number of passes adds rows without changing existing ones.
"""

import hashlib
import logging
import time
from dataclasses import dataclass

import pandas as pd

from xlsafety.errors import ModelError
from xlsafety.language_check import check_language, repair_text

log = logging.getLogger(__name__)

# Seconds between two progress lines in a job's log.
PROGRESS_INTERVAL_S = 60.0

# Tokens that end an assistant turn in common chat templates, used as extra stop ids when present.
END_OF_TURN_TOKENS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>")


@dataclass(frozen=True)
class Decoding:
    """A decoding variant: the sampling settings of a configuration."""

    name: str
    temperature: float
    top_p: float
    max_new_tokens: int
    passes: int
    system_prompt: str | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class PromptFormat:
    """The rule that turns a dataset prompt into the text sent to a model."""

    kind: str  # "chat" applies the tokenizer's chat template; "raw" fills `template`.
    template: str = "{prompt}"
    stop_strings: tuple[str, ...] = ()


def row_seed(study_seed: int, configuration: str, language: str, prompt_id: int, pass_index: int) -> int:
    """Derive the sampling seed of one (configuration, language, prompt, pass) row."""
    key = f"{study_seed}|{configuration}|{language}|{prompt_id}|{pass_index}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def build_prompt(tokenizer, text: str, prompt_format: PromptFormat, system_prompt: str | None) -> str:
    """Return the exact text sent to the model for one prompt."""
    if prompt_format.kind == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ModelError(
                "the tokenizer has no chat template but the model's prompt_format is 'chat'; "
                "set prompt_format: raw with a raw_template, or use a model with a chat template"
            )
        messages = [{"role": "user", "content": text}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    body = prompt_format.template.format(prompt=text)
    return f"{system_prompt}\n\n{body}" if system_prompt else body


def stop_token_ids(model, tokenizer) -> list[int]:
    """Collect the ids that end generation: the generation config's and tokenizer's eos plus end-of-turn tokens."""
    return stop_ids_of(model.generation_config, tokenizer)


def stop_ids_of(generation_config, tokenizer) -> list[int]:
    """Collect the eos ids of `generation_config` and `tokenizer`, plus the tokenizer's end-of-turn tokens."""
    ids: set[int] = set()
    configured = generation_config.eos_token_id
    if configured is not None:
        ids.update(configured if isinstance(configured, list) else [configured])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocabulary = tokenizer.get_vocab()
    ids.update(vocabulary[token] for token in END_OF_TURN_TOKENS if token in vocabulary)
    return sorted(ids)


def make_token_chooser(seeds: list[int], decoding: Decoding):
    """Build the function that picks each active row's next token from its logits.

    Greedy rows take the argmax, with no softmax over the vocabulary. Sampled
    rows draw from the temperature-scaled, top-p filtered distribution: each
    row takes one uniform number per step from its own generator, seeded from
    the row seed, so a row's draws do not depend on which rows share its
    batch. The token is where the row's cumulative distribution passes that
    number (`sample_tokens`).
    """
    import torch

    if decoding.greedy:
        def choose_greedy(logits, active: list[int]):
            # `max` returns the first index of the maximum, as `argmax` does, and took a third of
            # argmax's time on a CPU (torch 2.13, 96 rows of 49k logits).
            maxima, tokens = logits.max(dim=-1)
            _check_row_maxima(maxima)
            return tokens

        return choose_greedy

    # CPU generators give the same draws on every device, so sampling always runs on the CPU.
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]

    def choose(logits, active: list[int]):
        scores = logits.float().cpu()
        maxima = scores.amax(dim=-1, keepdim=True)
        _check_row_maxima(maxima)
        # Scaled after subtracting each row's maximum, so that a tiny temperature gives -inf, never inf - inf.
        probabilities = torch.softmax((scores - maxima) / decoding.temperature, dim=-1)
        uniforms = torch.cat([torch.rand(1, generator=generators[row], dtype=torch.float64) for row in active])
        return sample_tokens(probabilities, uniforms, decoding.top_p).to(logits.device)

    return choose


def _check_row_maxima(maxima) -> None:
    """Raise ModelError when a row of logits, given by its maximum, contains NaN or +inf or is all -inf.

    No token choice can use such a row. Single -inf logits stay allowed,
    because some models mask tokens that way.
    """
    import torch

    # The maximum of a row is NaN when the row contains a NaN.
    if not bool(torch.isfinite(maxima).all()):
        raise ModelError(
            "the model produced NaN or infinite logits. In float16 or bfloat16 this is often an overflow: "
            "try generation.dtype: float32, and check that the model's weights loaded correctly"
        )


def sample_tokens(probabilities, uniforms, top_p: float, candidates: tuple[int, ...] = (64, 512)):
    """Return, for each row, the token where its cumulative distribution first exceeds `uniforms` x its total.

    The distribution is summed in token-id order, so two tokens whose
    probabilities swap places through a rounding difference (another batch,
    other padding) still give the same draw. With top-p, the nucleus (the
    smallest set of most likely tokens whose mass reaches top_p) is looked
    for among each row's most likely tokens, first the `candidates[0]` most
    likely, then more for the rows whose candidates hold less mass, and only
    the rows that none of the counts cover are sorted in full. The draw is
    exact either way.
    """
    import torch

    if top_p >= 1.0:
        return _invert(probabilities, uniforms)

    tokens = torch.empty(len(probabilities), dtype=torch.long)
    pending = torch.arange(len(probabilities))
    for count in candidates:
        # The first count covers every row, so it reads `probabilities` without copying it.
        rows = probabilities if len(pending) == len(probabilities) else probabilities[pending]
        ordered, order = torch.topk(rows, min(count, probabilities.shape[-1]), dim=-1)
        covered = ordered.sum(dim=-1) >= top_p
        done = pending[covered]
        tokens[done] = _draw_from_candidates(ordered[covered], order[covered], uniforms[done], top_p)
        pending = pending[~covered]
        if not len(pending):
            return tokens

    ordered, order = torch.sort(probabilities[pending], descending=True, dim=-1)
    nucleus = torch.zeros_like(ordered).scatter(-1, order, _nucleus(ordered, top_p))
    tokens[pending] = _invert(nucleus, uniforms[pending])
    return tokens


def _draw_from_candidates(ordered, order, uniforms, top_p: float):
    """Draw from the nucleus inside each row's candidates (probabilities `ordered`, token ids `order`)."""
    # The candidates are put back in token-id order before the draw.
    ids, positions = order.sort(dim=-1)
    nucleus = _nucleus(ordered, top_p).gather(-1, positions)
    return ids.gather(-1, _invert(nucleus, uniforms)[:, None])[:, 0]


def _nucleus(ordered, top_p: float):
    """Zero the probabilities (sorted in descending order per row) that fall outside each row's nucleus."""
    # A token stays when the mass before it is below top_p, so the first token always stays.
    outside = ordered.cumsum(dim=-1) - ordered >= top_p
    return ordered.masked_fill(outside, 0.0)


def _invert(weights, uniforms):
    """Return each row's first column where the running sum of `weights` exceeds its uniform x the row total."""
    import torch

    cumulative = weights.cumsum(dim=-1, dtype=torch.float64)
    targets = uniforms * cumulative[:, -1]
    # A zero weight never moves the running sum past a target, so it is never chosen.
    columns = torch.searchsorted(cumulative, targets[:, None], right=True)[:, 0]
    return columns.clamp(max=weights.shape[-1] - 1)


@dataclass(frozen=True)
class Completion:
    """The decoded output of one request."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def generate_batch(model, tokenizer, prompts: list[str], seeds: list[int], decoding: Decoding,
                   stop_ids: list[int], prompt_format: PromptFormat, pool=None) -> list[Completion]:
    """Generate one completion per prompt in a single left-padded batch, with key/value memory from `pool`."""
    import torch

    from xlsafety.backends.decode_loop import decode

    encoded = tokenizer(prompts, return_tensors="pt", padding=True,
                        add_special_tokens=adds_special_tokens(prompt_format)).to(model.device)
    stop_strings = prompt_format.stop_strings
    text_stop = None
    if stop_strings:
        def text_stop(tokens: list[int]) -> bool:
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            return any(stop_string in text for stop_string in stop_strings)

    with torch.inference_mode():
        outputs = decode(
            model, encoded["input_ids"], encoded["attention_mask"],
            max_new_tokens=decoding.max_new_tokens, choose=make_token_chooser(seeds, decoding),
            stop_ids=stop_ids, text_stop=text_stop, pool=pool,
        )

    prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
    return [
        _decode_completion(tokenizer, tokens, count, stop_ids, stop_strings, decoding)
        for tokens, count in zip(outputs, prompt_tokens)
    ]


def adds_special_tokens(prompt_format: PromptFormat) -> bool:
    """Tell whether the tokenizer should add its special tokens (BOS) to a prompt in this format."""
    # A chat template writes its own BOS token; raw text needs the tokenizer's,
    # and Gemma, for one, produces loops without it.
    return prompt_format.kind == "raw"


def _decode_completion(tokenizer, tokens: list[int], prompt_tokens: int, stop_ids: list[int],
                       stop_strings: tuple[str, ...], decoding: Decoding) -> Completion:
    stop_positions = [position for position, token in enumerate(tokens) if token in stop_ids]
    if stop_positions:
        kept = tokens[: stop_positions[0]]
        finish_reason, counted = "stop", stop_positions[0] + 1
    else:
        kept = tokens
        finish_reason = "length" if len(tokens) >= decoding.max_new_tokens else "stop"
        counted = len(tokens)

    text = tokenizer.decode(kept, skip_special_tokens=True)
    for stop_string in stop_strings:
        if stop_string in text:
            text, finish_reason = text.split(stop_string, 1)[0], "stop"

    # A completion cut at the token limit can end inside a multi-byte character.
    text = text.rstrip("\ufffd")
    return Completion(text.strip(), finish_reason, int(prompt_tokens), counted)


def load_prepared_model(model_dir: str, threads: int, device: str = "cpu", dtype: str = "float32"):
    """Load a prepared checkpoint and its tokenizer, set up for left-padded batches.

    `device` and `dtype` take the `generation.device` and `generation.dtype`
    values, `auto` included (`xlsafety.backends.hardware`).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from xlsafety.backends.hardware import select_device, select_dtype
    from xlsafety.models import drop_gguf_quantization

    torch.set_num_threads(threads)
    device = select_device(device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Checkpoints prepared by earlier versions still name the GGUF file they came from.
    config = AutoConfig.from_pretrained(model_dir)
    drop_gguf_quantization(config)
    model = AutoModelForCausalLM.from_pretrained(model_dir, config=config, dtype=select_dtype(dtype, device))
    model = model.to(device)
    model.eval()
    if device == "cpu" and model.dtype == torch.bfloat16:
        from xlsafety.backends.packed_linear import pack_linear_layers

        pack_linear_layers(model)
    log.info("loaded %s on %s in %s", model_dir, device, model.dtype)
    return model, tokenizer


def build_requests(prompts: pd.DataFrame, tokenizer, *, configuration: str, decoding: Decoding,
                   prompt_format: PromptFormat, study_seed: int) -> tuple[str, list[tuple]]:
    """Return the language of `prompts` and one request per (prompt, pass), longest prompt first.

    A request is (prompt tokens, prompt id, pass, seed, prompt sent). Sorting
    by length puts prompts of similar length in the same batch, so batches
    need little padding. Longest first puts the batch that needs the most
    memory first, so running out of memory shows at once, and later batches
    fit in the key/value memory that it allocated.
    """
    language = prompts["language"].iloc[0] if len(prompts) else ""
    requests = []
    for prompt_id, text in zip(prompts["id"], prompts["text"]):
        sent = build_prompt(tokenizer, text, prompt_format, decoding.system_prompt)
        length = len(tokenizer(sent, add_special_tokens=adds_special_tokens(prompt_format))["input_ids"])
        for pass_index in range(decoding.passes):
            seed = row_seed(study_seed, configuration, language, int(prompt_id), pass_index)
            requests.append((length, int(prompt_id), pass_index, seed, sent))
    requests.sort(key=lambda request: (-request[0], request[1], request[2]))
    return language, requests


def split_resumed(checkpoint, requests: list[tuple]) -> tuple[list[dict], list[tuple]]:
    """Return the rows that `checkpoint` already holds for `requests`, and the requests still pending."""
    rows = _resumed_rows(checkpoint, requests)
    done = {(row["id"], row["pass"]) for row in rows}
    pending = [request for request in requests if (request[1], request[2]) not in done]
    return rows, pending


def generate_language(prompts: pd.DataFrame, model, tokenizer, *, configuration: str, model_name: str,
                      decoding: Decoding, prompt_format: PromptFormat, study_seed: int,
                      batch_size: int | str, model_identity: str, checkpoint=None) -> pd.DataFrame:
    """Generate every (prompt, pass) of one configuration in one language.

    Requests are sorted by prompt length so that batches need little padding,
    and rows are returned in (id, pass) order. `batch_size` is a number of
    requests or `auto` (`xlsafety.backends.hardware.auto_batch_size`). With a
    `Checkpoint`, each finished batch is saved at once, and rows saved by an
    earlier, killed attempt are reused instead of generated again.
    """
    language, requests = build_requests(prompts, tokenizer, configuration=configuration, decoding=decoding,
                                        prompt_format=prompt_format, study_seed=study_seed)
    rows, pending = split_resumed(checkpoint, requests)

    if batch_size == "auto":
        from xlsafety.backends.hardware import auto_batch_size

        longest = max((request[0] for request in pending), default=1)
        batch_size = auto_batch_size(model.config, model.device.type, model.dtype.itemsize, longest,
                                     decoding.max_new_tokens)

    started = time.perf_counter()
    finished = _generate_pending(model, tokenizer, pending, decoding, prompt_format, batch_size, checkpoint,
                                 progress_label=f"{configuration} {language}")
    rows.extend(finished)

    elapsed = time.perf_counter() - started
    new_tokens = sum(row["completion_tokens"] for row in finished)
    log.info("%s %s: %d requests, %d new tokens in %.1f s (%.1f tokens/s)", configuration, language,
             len(finished), new_tokens, elapsed, new_tokens / max(elapsed, 1e-9))

    return generations_frame(
        rows, configuration=configuration, model_name=model_name, decoding=decoding, language=language,
        prompt_format=prompt_format.kind, backend="transformers", model_identity=model_identity,
    )


def _generate_pending(model, tokenizer, pending: list, decoding: Decoding, prompt_format: PromptFormat,
                      batch_size: int, checkpoint, progress_label: str) -> list[dict]:
    """Generate the pending requests in batches, halving the batch size when memory runs out."""
    from tqdm import tqdm

    from xlsafety.backends.decode_loop import BufferPool
    from xlsafety.backends.hardware import is_out_of_memory

    stop_ids = stop_token_ids(model, tokenizer)
    pool = BufferPool()
    rows: list[dict] = []
    progress = tqdm(total=len(pending), desc=progress_label, unit="request", file=_LogStream(),
                    mininterval=PROGRESS_INTERVAL_S, ascii=True)
    start = 0
    while start < len(pending):
        batch = pending[start : start + batch_size]
        try:
            completions = generate_batch(
                model, tokenizer, [request[4] for request in batch], [request[3] for request in batch],
                decoding, stop_ids, prompt_format, pool,
            )
        except (RuntimeError, MemoryError) as error:
            if batch_size == 1 or not (isinstance(error, MemoryError) or is_out_of_memory(error)):
                raise
            pool.clear()
            batch_size //= 2
            log.warning("out of memory with a batch of %d requests; retrying with %d", len(batch), batch_size)
            _release_cached_memory(model)
            continue

        finished = [completion_row(request, completion) for request, completion in zip(batch, completions)]
        if checkpoint is not None:
            checkpoint.append(finished)
        rows.extend(finished)
        progress.update(len(batch))
        start += len(batch)

    progress.close()
    return rows


def _release_cached_memory(model) -> None:
    import torch

    if model.device.type == "cuda":
        torch.cuda.empty_cache()


class _LogStream:
    """A file-like target that sends each tqdm line to the log, so progress lands in the job's log file."""

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        if line:
            log.info("%s", line)

    def flush(self) -> None:
        pass


def generations_frame(rows: list[dict], *, configuration: str, model_name: str, decoding: Decoding,
                      language: str, prompt_format: str, backend: str, model_identity: str) -> pd.DataFrame:
    """Return finished rows in (id, pass) order with the columns that every row of a job shares."""
    # Repaired before the frame is built, because pandas' string columns reject lone surrogates.
    rows = [{**row, "text": repair_text(row["text"])} for row in rows]
    frame = pd.DataFrame(rows).sort_values(["id", "pass"]).reset_index(drop=True)
    frame["language_check"] = [check_language(text, language) for text in frame["text"]]
    frame["configuration"] = configuration
    frame["model"] = model_name
    frame["decoding"] = decoding.name
    frame["language"] = language
    frame["prompt_format"] = prompt_format
    frame["temperature"] = decoding.temperature
    frame["top_p"] = decoding.top_p
    frame["max_new_tokens"] = decoding.max_new_tokens
    frame["system_prompt"] = decoding.system_prompt
    frame["backend"] = backend
    frame["model_identity"] = model_identity
    return frame


def _resumed_rows(checkpoint, requests) -> list[dict]:
    expected = {(prompt_id, pass_index): (seed, sent) for _, prompt_id, pass_index, seed, sent in requests}
    return resumed_rows(checkpoint, expected)


def resumed_rows(checkpoint, expected: dict[tuple[int, int], tuple[int, str]]) -> list[dict]:
    """Return the checkpointed rows that match a current request exactly.

    `expected` maps (prompt id, pass) to the (seed, prompt sent) of the request
    now due. A saved row with another seed or prompt text is stale and dropped.
    """
    if checkpoint is None:
        return []
    saved = checkpoint.load()
    if saved.empty:
        return []

    rows = [
        row for row in saved.to_dict("records")
        if expected.get((row["id"], row["pass"])) == (row["seed"], row["prompt_sent"])
    ]
    unique = {(row["id"], row["pass"]): row for row in rows}
    return list(unique.values())


def completion_row(request, completion: Completion) -> dict:
    """Return the table row of a finished request."""
    _, prompt_id, pass_index, seed, sent = request
    return {
        "id": prompt_id,
        "pass": pass_index,
        "seed": seed,
        "prompt_sent": sent,
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
    }
