"""The local transformers backend: a prepared checkpoint from `results/models/{model}`.

The generation code itself stays in `xlsafety.generate`, where existing
callers and tests import it. This module adapts it to the backend interface.
"""

import json
from dataclasses import dataclass

import pandas as pd

from xlsafety.generate import generate_language, load_prepared_model
from xlsafety.models import read_identity


@dataclass
class TransformersBackend:
    """A loaded local model that generates in batches of `batch_size` prompts (a number or `auto`)."""

    model: object
    tokenizer: object
    batch_size: int | str
    model_identity: str

    @classmethod
    def load(cls, model_dir: str, *, threads: int, batch_size: int | str, device: str = "auto",
             dtype: str = "auto") -> "TransformersBackend":
        """Load the prepared model in `model_dir` on `device` in `dtype`, using `threads` CPU threads."""
        identity = json.dumps(read_identity(model_dir), sort_keys=True)
        model, tokenizer = load_prepared_model(model_dir, threads, device=device, dtype=dtype)
        return cls(model, tokenizer, batch_size, identity)

    @property
    def precision(self) -> str:
        """The device type and dtype that the model runs in, such as `cpu float32`."""
        return f"{self.model.device.type} {str(self.model.dtype).removeprefix('torch.')}"

    def generate(self, prompts: pd.DataFrame, job) -> pd.DataFrame:
        """Generate every (prompt, pass) of `job` in the language of `prompts`."""
        return generate_language(
            prompts,
            self.model,
            self.tokenizer,
            configuration=job.configuration,
            model_name=job.model_name,
            decoding=job.decoding,
            prompt_format=job.prompt_format,
            study_seed=job.study_seed,
            batch_size=self.batch_size,
            model_identity=self.model_identity,
            checkpoint=job.checkpoint,
        )
