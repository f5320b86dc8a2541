"""The `seq2seq` backend: transformers translation models such as NLLB, M2M100 or Marian.

Many-to-many models select the language pair with language tokens: NLLB uses
FLORES-200 codes such as `fra_Latn`, M2M100 uses tokens such as `__fr__` for
the code `fr`. The code of each side is the config's `source_code` or
`target_code` when given, else the first form in the tokenizer's vocabulary:
the NLLB code from the language metadata, then the ISO code as `__xx__`.
A Marian model translates one fixed pair and has no language tokens, so
back-translation with Marian needs `back_model`, the model of the opposite
pair.
"""

import logging
from dataclasses import dataclass

from xlsafety.errors import ModelError
from xlsafety.translate.registry import Direction, register

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LanguageCode:
    """A language as one model names it: the code its tokenizer accepts and its token in the vocabulary."""

    code: str
    token: str


def language_code(vocabulary: dict, language: str, nllb: str | None, explicit: str | None,
                  model: str) -> LanguageCode | None:
    """Find the model code of `language` in a tokenizer vocabulary.

    Returns None when the model has no token for the language by any
    automatic form, which is the case for single-pair models such as Marian.
    An explicit code that the vocabulary lacks is an error.
    """
    if explicit:
        for token in (explicit, f"__{explicit}__"):
            if token in vocabulary:
                return LanguageCode(explicit, token)
        raise ModelError(
            f"{model}: the tokenizer has no token for language code {explicit!r} "
            f"(tried {explicit!r} and '__{explicit}__'); check translation.<language>.source_code "
            "and target_code against the model's documentation"
        )
    if nllb and nllb in vocabulary:
        return LanguageCode(nllb, nllb)
    if f"__{language}__" in vocabulary:
        return LanguageCode(language, f"__{language}__")
    return None


class Seq2SeqTranslator:
    """A loaded encoder-decoder translation model, decoded greedily."""

    def __init__(self, model, tokenizer, name: str, max_new_tokens: int):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_new_tokens = max_new_tokens

    def translate(self, texts: list[str], direction: Direction) -> list[str]:
        """Translate `texts` in one batch."""
        import torch

        vocabulary = self.tokenizer.get_vocab()
        source = language_code(vocabulary, direction.source, direction.source_nllb, direction.source_code, self.name)
        target = language_code(vocabulary, direction.target, direction.target_nllb, direction.target_code, self.name)
        options = {}
        if source is not None and hasattr(self.tokenizer, "src_lang"):
            # NLLB and M2M100 tokenizers put the source language token in front of the text.
            self.tokenizer.src_lang = source.code
        if target is not None:
            # The decoder starts with the target language token, which selects the output language.
            options["forced_bos_token_id"] = self.tokenizer.convert_tokens_to_ids(target.token)

        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        with torch.inference_mode():
            output = self.model.generate(**encoded, max_new_tokens=self.max_new_tokens, do_sample=False,
                                         num_beams=1, **options)
        return [text.strip() for text in self.tokenizer.batch_decode(output, skip_special_tokens=True)]


@register("seq2seq", "a transformers encoder-decoder translation model (NLLB, M2M100, Marian)",
          model_kind="location")
def make_seq2seq_translator(settings: dict, location: str, threads: int) -> Seq2SeqTranslator:
    """Load a translation model from a local folder or a hub id (the latter needs network access)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    torch.set_num_threads(threads)
    log.info("loading translation model %s", location)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForSeq2SeqLM.from_pretrained(location, dtype=torch.float32)
    except (OSError, ValueError) as error:
        raise ModelError(
            f"cannot load translation model {location!r}: {error}. Give a local folder with a "
            "transformers encoder-decoder checkpoint, or a hub id on a machine with network access."
        ) from error
    model.eval()
    return Seq2SeqTranslator(model, tokenizer, location, settings["max_new_tokens"])
