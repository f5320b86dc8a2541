"""Generation with the transformers backend: batched, seeded, one row per (prompt, pass).

This module also contains what every backend shares: `Decoding`, `PromptFormat`,
`row_seed`, resuming from a checkpoint (`resumed_rows`) and the final table
layout (`generations_frame`). The backends themselves are registered by name
in `xlsafety.backends`.

Sampling is done per row by `RowSampler`, with one random generator per row
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

log = logging.getLogger(__name__)

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
    ids: set[int] = set()
    configured = model.generation_config.eos_token_id
    if configured is not None:
        ids.update(configured if isinstance(configured, list) else [configured])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocabulary = tokenizer.get_vocab()
    ids.update(vocabulary[token] for token in END_OF_TURN_TOKENS if token in vocabulary)
    return sorted(ids)


def make_row_sampler(seeds: list[int], temperature: float, top_p: float):
    """Build a logits processor that samples each row with its own generator.

    It returns scores that are -inf everywhere but the sampled token, so that
    greedy decoding in `generate` picks exactly the sampled token.
    """
    import torch
    from transformers import LogitsProcessor

    class RowSampler(LogitsProcessor):
        def __init__(self):
            self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]

        def __call__(self, input_ids, scores):
            probabilities = torch.softmax(scores.float() / temperature, dim=-1)
            if top_p < 1.0:
                probabilities = _top_p_filter(probabilities, top_p)

            chosen = torch.stack(
                [
                    torch.multinomial(probabilities[row], 1, generator=generator)[0]
                    for row, generator in enumerate(self.generators)
                ]
            )
            forced = torch.full_like(scores, float("-inf"))
            forced[torch.arange(scores.shape[0]), chosen] = 0.0
            return forced

    return RowSampler()


def _top_p_filter(probabilities, top_p: float, candidates: int = 512):
    """Zero all but the smallest set of most likely tokens whose mass reaches top_p, then renormalise.

    Sorting a 262k-token vocabulary at every step is slow on a CPU. The nucleus
    is therefore looked for among the `candidates` most likely tokens first, and
    only a batch with a larger nucleus falls back to a full sort. The result is
    exact either way.
    """
    import torch

    count = min(candidates, probabilities.shape[-1])
    ordered, order = torch.topk(probabilities, count, dim=-1)
    if (ordered.sum(dim=-1) < top_p).any():
        ordered, order = torch.sort(probabilities, descending=True, dim=-1)

    # A token stays when the mass before it is below top_p, so the first token always stays.
    outside = ordered.cumsum(dim=-1) - ordered >= top_p
    ordered = ordered.masked_fill(outside, 0.0)
    filtered = torch.zeros_like(probabilities).scatter(-1, order, ordered)
    return filtered / filtered.sum(dim=-1, keepdim=True)


@dataclass(frozen=True)
class Completion:
    """The decoded output of one request."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def generate_batch(model, tokenizer, prompts: list[str], seeds: list[int], decoding: Decoding,
                   stop_ids: list[int], prompt_format: PromptFormat) -> list[Completion]:
    """Generate one completion per prompt in a single left-padded batch."""
    import torch
    from transformers import GenerationConfig

    encoded = tokenizer(prompts, return_tensors="pt", padding=True,
                        add_special_tokens=_adds_special_tokens(prompt_format))
    stop_strings = prompt_format.stop_strings
    generation_config = GenerationConfig(
        max_new_tokens=decoding.max_new_tokens,
        do_sample=False,
        eos_token_id=stop_ids,
        pad_token_id=tokenizer.pad_token_id,
        stop_strings=list(stop_strings) or None,
    )
    processors = [] if decoding.greedy else [make_row_sampler(seeds, decoding.temperature, decoding.top_p)]

    with torch.inference_mode():
        output = model.generate(
            **encoded,
            generation_config=generation_config,
            logits_processor=processors,
            tokenizer=tokenizer if stop_strings else None,
        )

    prompt_length = encoded["input_ids"].shape[1]
    prompt_tokens = encoded["attention_mask"].sum(dim=1).tolist()
    return [
        _decode_completion(tokenizer, row[prompt_length:].tolist(), count, stop_ids, stop_strings, decoding)
        for row, count in zip(output, prompt_tokens)
    ]


def _adds_special_tokens(prompt_format: PromptFormat) -> bool:
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


def load_prepared_model(model_dir: str, threads: int):
    """Load a prepared checkpoint and its tokenizer, set up for left-padded batches."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def generate_language(prompts: pd.DataFrame, model, tokenizer, *, configuration: str, model_name: str,
                      decoding: Decoding, prompt_format: PromptFormat, study_seed: int,
                      batch_size: int, model_identity: str, checkpoint=None) -> pd.DataFrame:
    """Generate every (prompt, pass) of one configuration in one language.

    Requests are sorted by prompt length so that batches need little padding,
    and rows are returned in (id, pass) order. With a `Checkpoint`, each
    finished batch is saved at once, and rows saved by an earlier, killed
    attempt are reused instead of generated again.
    """
    language = prompts["language"].iloc[0] if len(prompts) else ""
    requests = []
    for prompt_id, text in zip(prompts["id"], prompts["text"]):
        sent = build_prompt(tokenizer, text, prompt_format, decoding.system_prompt)
        length = len(tokenizer(sent, add_special_tokens=_adds_special_tokens(prompt_format))["input_ids"])
        for pass_index in range(decoding.passes):
            seed = row_seed(study_seed, configuration, language, int(prompt_id), pass_index)
            requests.append((length, int(prompt_id), pass_index, seed, sent))
    requests.sort()

    rows = _resumed_rows(checkpoint, requests)
    done = {(row["id"], row["pass"]) for row in rows}
    pending = [request for request in requests if (request[1], request[2]) not in done]

    stop_ids = stop_token_ids(model, tokenizer)
    started = time.perf_counter()
    new_tokens = 0
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        completions = generate_batch(
            model, tokenizer, [request[4] for request in batch], [request[3] for request in batch],
            decoding, stop_ids, prompt_format,
        )
        finished = [_row(request, completion) for request, completion in zip(batch, completions)]
        if checkpoint is not None:
            checkpoint.append(finished)
        rows.extend(finished)
        new_tokens += sum(row["completion_tokens"] for row in finished)
        log.info("%s %s: %d/%d requests done", configuration, language, len(rows), len(requests))

    elapsed = time.perf_counter() - started
    log.info("%s %s: %d new tokens in %.1f s (%.1f tokens/s)", configuration, language,
             new_tokens, elapsed, new_tokens / max(elapsed, 1e-9))

    return generations_frame(
        rows, configuration=configuration, model_name=model_name, decoding=decoding, language=language,
        prompt_format=prompt_format.kind, backend="transformers", model_identity=model_identity,
    )


def generations_frame(rows: list[dict], *, configuration: str, model_name: str, decoding: Decoding,
                      language: str, prompt_format: str, backend: str, model_identity: str) -> pd.DataFrame:
    """Return finished rows in (id, pass) order with the columns that every row of a job shares."""
    frame = pd.DataFrame(rows).sort_values(["id", "pass"]).reset_index(drop=True)
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


def _row(request, completion: Completion) -> dict:
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
