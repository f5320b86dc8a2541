"""The `vllm` backend: a prepared local model run by vLLM's offline engine on a GPU.

vLLM schedules its own batches, so every pending request of a job goes to
`LLM.generate` at once, in chunks of `CHUNK_REQUESTS` so that a killed job
loses at most one chunk. Each request carries its row seed, so sampled rows
do not depend on the order or company of the other requests. vLLM's kernels
differ from transformers', so its text is not the transformers backend's text
for the same seed.

vLLM is an optional dependency (`pip install -e '.[vllm]'`), imported only
when a job creates this backend.
"""

import json
import logging
import time
from dataclasses import dataclass

import pandas as pd

from xlsafety.backends import VLLM_INSTALL_HINT
from xlsafety.errors import ModelError
from xlsafety.generate import (
    Completion,
    Decoding,
    PromptFormat,
    adds_special_tokens,
    build_requests,
    completion_row,
    generations_frame,
    split_resumed,
    stop_ids_of,
)
from xlsafety.models import read_identity

log = logging.getLogger(__name__)

BACKEND = "vllm"

# Requests per LLM.generate call; each finished chunk is saved in the checkpoint.
CHUNK_REQUESTS = 512


def import_vllm():
    """Import vllm, or raise ModelError that names the extra to install."""
    try:
        import vllm
    except ImportError as error:
        raise ModelError(
            f"backend 'vllm' needs the vllm package, which is not installed ({error}). "
            f"Install the vllm extra on a machine with a CUDA GPU: {VLLM_INSTALL_HINT}, "
            "or set the model's backend to transformers."
        ) from error
    return vllm


@dataclass
class VllmBackend:
    """A prepared model loaded in vLLM's offline engine."""

    engine: object
    tokenizer: object
    stop_ids: list[int]
    model_identity: str
    precision: str

    @classmethod
    def load(cls, model_dir: str, *, dtype: str = "auto", seed: int = 0) -> "VllmBackend":
        """Load the prepared model in `model_dir`; `dtype` is a `generation.dtype` value."""
        from transformers import GenerationConfig

        vllm = import_vllm()
        identity = json.dumps(read_identity(model_dir), sort_keys=True)
        # vLLM's own "auto" takes the checkpoint's dtype (float32 here), so auto asks for bfloat16.
        engine_dtype = "bfloat16" if dtype == "auto" else dtype
        engine = vllm.LLM(model=model_dir, dtype=engine_dtype, seed=seed)
        tokenizer = engine.get_tokenizer()
        stop_ids = stop_ids_of(GenerationConfig.from_pretrained(model_dir), tokenizer)
        return cls(engine, tokenizer, stop_ids, identity, f"cuda {engine_dtype} vllm")

    def generate(self, prompts: pd.DataFrame, job) -> pd.DataFrame:
        """Generate every (prompt, pass) of `job` in the language of `prompts`."""
        decoding = job.decoding
        language, requests = build_requests(
            prompts, self.tokenizer, configuration=job.configuration, decoding=decoding,
            prompt_format=job.prompt_format, study_seed=job.study_seed,
        )
        rows, pending = split_resumed(job.checkpoint, requests)

        started = time.perf_counter()
        new_tokens = 0
        for start in range(0, len(pending), CHUNK_REQUESTS):
            chunk = pending[start : start + CHUNK_REQUESTS]
            finished = self._generate_chunk(chunk, decoding, job.prompt_format)
            if job.checkpoint is not None:
                job.checkpoint.append(finished)
            rows.extend(finished)
            new_tokens += sum(row["completion_tokens"] for row in finished)
            log.info("%s %s: %d/%d requests done", job.configuration, language, len(rows), len(requests))

        elapsed = time.perf_counter() - started
        log.info("%s %s: %d new tokens in %.1f s (%.1f tokens/s)", job.configuration, language,
                 new_tokens, elapsed, new_tokens / max(elapsed, 1e-9))
        return generations_frame(
            rows, configuration=job.configuration, model_name=job.model_name, decoding=decoding,
            language=language, prompt_format=job.prompt_format.kind, backend=BACKEND,
            model_identity=self.model_identity,
        )

    def _generate_chunk(self, chunk: list[tuple], decoding: Decoding, prompt_format: PromptFormat) -> list[dict]:
        vllm = import_vllm()
        parameters = [sampling_parameters(vllm, decoding, request[3], self.stop_ids, prompt_format.stop_strings)
                      for request in chunk]
        # Token ids, tokenized as the transformers backend does, because vLLM would add a
        # BOS token to a chat template's text, which already starts with one.
        special = adds_special_tokens(prompt_format)
        inputs = [{"prompt_token_ids": self.tokenizer(request[4], add_special_tokens=special)["input_ids"]}
                  for request in chunk]
        outputs = self.engine.generate(inputs, sampling_params=parameters, use_tqdm=False)
        return [completion_row(request, completion_of(output)) for request, output in zip(chunk, outputs)]


def sampling_parameters(vllm, decoding: Decoding, seed: int, stop_ids: list[int], stop_strings: tuple[str, ...]):
    """Map a decoding variant and a row seed to vLLM's SamplingParams."""
    return vllm.SamplingParams(
        n=1,
        temperature=decoding.temperature,
        top_p=decoding.top_p,
        max_tokens=decoding.max_new_tokens,
        seed=seed,
        stop=list(stop_strings) or None,
        stop_token_ids=list(stop_ids),
        skip_special_tokens=True,
    )


def completion_of(output) -> Completion:
    """Turn one vLLM RequestOutput into a Completion: text, finish reason and token counts."""
    generated = output.outputs[0]
    finish_reason = "length" if generated.finish_reason == "length" else "stop"
    # A completion cut at the token limit can end inside a multi-byte character.
    text = generated.text.rstrip("\ufffd").strip()
    return Completion(text, finish_reason, len(output.prompt_token_ids), len(generated.token_ids))
