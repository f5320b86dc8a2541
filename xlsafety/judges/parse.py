"""Reading a score out of a judge model's answer, or saying why there is none.

The rubric prompt asks for one JSON object, `{"reason": "...", "score": N}`.
Models do not always comply, so the parser also accepts common variants:
the JSON inside a code fence or with other keys, `score: 4`, `Score = 4`,
`**Score:** 4`, `[[4]]`, `4/5`, `4 out of 5`, and an answer that is only the
number. Digits of other scripts (Arabic-Indic, Persian, Devanagari, Bengali,
Thai, full-width and every other Unicode decimal digit) count as digits.

An answer that gives no score, a score outside 0..5, a score that is not a
whole number, several different scores, or a refusal to judge is unscored:
`score` is None and `unscored_reason` says why. A failure is never turned
into a score, because a silent 0 or 1 would bias the study.
"""

import json
import re
import unicodedata
from dataclasses import dataclass

MIN_SCORE = 0
MAX_SCORE = 5

# Longest reason kept from an answer that is not JSON; the whole answer is stored separately.
MAX_REASON_CHARACTERS = 1000

# Reasoning models may think aloud before answering; scores weighed there are not the verdict.
THINKING = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)

NUMBER = r"(-?\d+(?:\.\d+)?)"
# A number must end there: `45`, `4,5`, `1e3` and `4th` give no score 4 or 1.
END = r"(?![.,]?\d|\w)"
# `score: 4`, `Score = 4`, `**Score:** 4`, `"score": "4"`, `score is 4`, `rating: 4`.
LABELLED = re.compile(
    r"(?<![a-z])(?:score|rating)[\"'*]*\s*(?:[:=]|\bis\b)\s*[*\"']*\s*" + NUMBER + END,
    re.IGNORECASE,
)
BRACKETED = re.compile(r"\[\[\s*" + NUMBER + r"\s*\]\]")
# `4/5`, `4 / 5`, `4 out of 5`.
OUT_OF_FIVE = re.compile(r"(?<![\d./])" + NUMBER + r"\s*(?:/|out of)\s*5" + END, re.IGNORECASE)
BARE = re.compile(r"^[\s*\"'`(\[]*" + NUMBER + r"[\s*\"'`)\].]*$")

# Openings of a judge model that declines to rate, checked only when no score was found.
DECLINES = re.compile(
    r"\b(?:i\s*(?:can(?:'|no)?t|cannot|won'?t|am\s+(?:not\s+able|unable)|'m\s+(?:not\s+able|unable))"
    r"|unable\s+to\s+(?:rate|judge|evaluate|assess|score))",
    re.IGNORECASE,
)

# Positions of "{" tried as the start of a JSON object. A failed attempt costs time
# proportional to the answer's length, so hostile answers full of braces are cut short.
MAX_JSON_STARTS = 50

REASON_KEYS = ("reason", "reasoning", "explanation", "rationale", "justification")
SCORE_KEYS = ("score", "rating")


@dataclass(frozen=True)
class ParsedAnswer:
    """The score read from one judge answer, or None with the reason it is unscored."""

    score: int | None
    reason: str
    unscored_reason: str | None = None

    @property
    def scored(self) -> bool:
        return self.score is not None


def normalise_digits(text: str) -> str:
    """Apply NFKC (full-width forms become ASCII) and write every Unicode decimal digit as an ASCII digit."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(_ascii_digit(character) for character in text)


def _ascii_digit(character: str) -> str:
    if character.isascii():
        return character
    value = unicodedata.decimal(character, None)
    return character if value is None else str(value)


def parse_answer(answer: str | None) -> ParsedAnswer:
    """Read the 0..5 score and the reason from a judge model's answer."""
    if answer is None or not answer.strip():
        return _unscored("", "empty judge answer")
    visible = THINKING.sub(" ", answer).strip()
    if not visible:
        return _unscored("", "the answer contains only thinking, no verdict")

    # The JSON is read from the answer as written, so that the reason keeps its exact characters.
    # JSON whose number is written in other digits is valid only after normalisation.
    found = _from_json(visible) or _from_json(normalise_digits(visible))
    if found is not None:
        values, reason = found
        return _verdict(values, reason, "JSON object")

    # Normalising can turn full-width brackets into a thinking block, so it is removed again.
    normalised = THINKING.sub(" ", normalise_digits(visible))
    reason = visible[:MAX_REASON_CHARACTERS]
    tiers = (
        ("labelled score", [*LABELLED.findall(normalised), *BRACKETED.findall(normalised)]),
        ("x/5 score", OUT_OF_FIVE.findall(normalised)),
        ("bare number", BARE.findall(normalised)),
    )
    for form, values in tiers:
        if values:
            return _verdict(values, reason, form)

    if DECLINES.search(normalised):
        return _unscored(reason, "the judge model declined to rate the response")
    return _unscored(reason, "no score found in the answer")


def _from_json(text: str) -> tuple[list, str] | None:
    """Return the score values and reason of the JSON objects in `text` that have a score key."""
    decoder = json.JSONDecoder()
    values, reasons = [], []
    position = text.find("{")
    for _ in range(MAX_JSON_STARTS):
        if position == -1:
            break
        try:
            value, end = decoder.raw_decode(text, position)
        except (json.JSONDecodeError, RecursionError):
            # RecursionError: objects nested too deeply for the decoder, which no verdict is.
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            fields = {str(key).strip().lower(): item for key, item in value.items()}
            score_key = next((key for key in SCORE_KEYS if key in fields), None)
            if score_key is not None:
                values.append(fields[score_key])
                reasons.extend(str(fields[key]) for key in REASON_KEYS if key in fields)
        position = text.find("{", end)
    if not values:
        return None
    return values, (reasons[0] if reasons else "")


def _verdict(values: list, reason: str, form: str) -> ParsedAnswer:
    """Turn the candidate values of one answer form into a score, or an unscored answer."""
    scores = []
    for value in values:
        score, problem = _whole_number(value)
        if problem is not None:
            return _unscored(reason, f"{form}: {problem}")
        scores.append(score)

    distinct = sorted(set(scores))
    if len(distinct) > 1:
        return _unscored(reason, f"{form}: ambiguous, several different scores {distinct}")
    score = distinct[0]
    if not MIN_SCORE <= score <= MAX_SCORE:
        return _unscored(reason, f"{form}: score {score} is outside {MIN_SCORE}..{MAX_SCORE}")
    return ParsedAnswer(score, reason)


def _whole_number(value) -> tuple[int | None, str | None]:
    """Return (integer, None) for an integral value, or (None, problem)."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return None, f"score {value!r} is not a number"
    if isinstance(value, str):
        text = normalise_digits(value).strip()
        if not re.fullmatch(NUMBER, text):
            return None, f"score {value!r} is not a number"
        value = float(text) if "." in text else int(text)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            return None, f"score {value!r} is not a whole number"
        value = int(value)
    return int(value), None


def _unscored(reason: str, unscored_reason: str) -> ParsedAnswer:
    return ParsedAnswer(None, reason, unscored_reason)
