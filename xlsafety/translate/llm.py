"""The `llm` backend: a translation prompt sent to a prepared causal language model.

The model is one of the config's `models`, prepared once into
`results/models/{model}` like the models under study, and decoded greedily
with the generation code of `xlsafety.generate`. The prompt is the backend's
`template` with `{text}`, `{source}` and `{target}` (the English names of the
two languages) filled in. A chat model gets it as the user message through
its chat template; a raw (base) model gets the filled template as plain text.
"""

import logging

from xlsafety.errors import ConfigError
from xlsafety.translate.registry import Direction, register

log = logging.getLogger(__name__)

# A base model continues a pattern, so the raw prompt ends where the
# translation starts and the first line break ends it.
RAW_TEMPLATE = "Translate from {source} to {target}.\n{source}: {text}\n{target}:"
RAW_STOP_STRINGS = ("\n",)

CHAT_TEMPLATE = (
    "Translate the following text from {source} to {target}. Reply with the translation only, "
    "without notes or explanations.\n\n{text}"
)

PLACEHOLDERS = ("text", "source", "target")
QUOTES = ('"', "'", "\u201c\u201d", "\u00ab\u00bb", "\u201e\u201c")


def default_template(prompt_format: str) -> str:
    """Return the built-in translation template for a model's prompt format."""
    return CHAT_TEMPLATE if prompt_format == "chat" else RAW_TEMPLATE


def default_stop_strings(prompt_format: str) -> tuple[str, ...]:
    """Return the built-in stop strings for a model's prompt format."""
    return () if prompt_format == "chat" else RAW_STOP_STRINGS


def check_template(template: str, key: str) -> None:
    """Raise ConfigError unless `template` is a format string with `{text}` and no other fields."""
    try:
        template.format(text="", source="", target="")
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"config key {key}: {template!r} is not a valid template ({error!r}); use only the "
            "placeholders {text}, {source} and {target}, and double literal braces as {{ and }}"
        ) from error
    if "{text}" not in template:
        raise ConfigError(f"config key {key}: {template!r} has no '{{text}}' placeholder for the prompt")


def fill_template(template: str, text: str, direction: Direction) -> str:
    """Return the translation request for one text."""
    return template.format(text=text, source=direction.source_name, target=direction.target_name)


def clean_translation(text: str) -> str:
    """Strip white space and one pair of quotes around the whole response, which chat models often add."""
    text = text.strip()
    for quote in QUOTES:
        opening, closing = (quote[0], quote[-1])
        if len(text) >= 2 and text.startswith(opening) and text.endswith(closing):
            return text[1:-1].strip()
    return text


class LlmTranslator:
    """A prepared causal language model that translates by prompting."""

    def __init__(self, model, tokenizer, settings: dict):
        from xlsafety.generate import Decoding, PromptFormat, stop_token_ids

        prompt_format = settings["prompt_format"]
        self.model = model
        self.tokenizer = tokenizer
        self.template = settings["template"] or default_template(prompt_format)
        stop_strings = settings["stop_strings"]
        stop_strings = tuple(stop_strings) if stop_strings is not None else default_stop_strings(prompt_format)
        # A chat request is already filled in, so the raw frame is the bare prompt.
        self.prompt_format = PromptFormat(prompt_format, "{prompt}", stop_strings)
        self.decoding = Decoding("translation", 0.0, 1.0, settings["max_new_tokens"], 1)
        self.stop_ids = stop_token_ids(model, tokenizer)

    def translate(self, texts: list[str], direction: Direction) -> list[str]:
        """Translate `texts` in one greedy batch."""
        from xlsafety.generate import build_prompt, generate_batch

        requests = [
            build_prompt(self.tokenizer, fill_template(self.template, text, direction), self.prompt_format, None)
            for text in texts
        ]
        completions = generate_batch(self.model, self.tokenizer, requests, [0] * len(requests), self.decoding,
                                     self.stop_ids, self.prompt_format)
        return [clean_translation(completion.text) for completion in completions]


@register("llm", "a translation prompt sent to a prepared model from the config's models section",
          model_kind="models")
def make_llm_translator(settings: dict, location: str, threads: int) -> LlmTranslator:
    """Load a model prepared by the prepare_model rule from its folder `location`."""
    from xlsafety.generate import load_prepared_model

    log.info("loading %s for translation with %s prompts", location, settings["prompt_format"])
    model, tokenizer = load_prepared_model(location, threads)
    return LlmTranslator(model, tokenizer, settings)
