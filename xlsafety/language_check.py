"""Checks of response text: repair of broken Unicode, and whether a response is in the requested language.

The language check is script-based. Each letter of a response is assigned
to a writing system by its Unicode block. The response is `other` when most
of its letters are in a script that the requested language does not use, and
`xlsafety.languages` names each language's script. For languages written
in Latin script, a short list of frequent function words tells them apart.

NOTE: the check cannot tell apart two languages that share a script and lack
a function-word list (Swedish from Danish, Hindi from Marathi), nor
Chinese from Japanese text written in kanji only. Those responses are
`undetermined` or `match`, never `other`. Short responses (fewer than
MIN_LETTERS letters) are `undetermined`, and so are responses in a language
added under the config's `language_metadata` unless the caller passes that metadata.
"""

import re

from xlsafety.languages import known_languages

MATCH = "match"
OTHER = "other"
UNDETERMINED = "undetermined"
VALUES = (MATCH, OTHER, UNDETERMINED)

# Code point ranges of the scripts named in xlsafety.languages, from the Unicode block charts.
SCRIPT_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "Latin": ((0x0041, 0x005A), (0x0061, 0x007A), (0x00C0, 0x024F), (0x1E00, 0x1EFF), (0x2C60, 0x2C7F),
              (0xA720, 0xA7FF), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A)),
    "Han": ((0x2E80, 0x2FDF), (0x3005, 0x3007), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
            (0x20000, 0x3134F)),
    "Kana": ((0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F)),
    "Hangul": ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7AF), (0xD7B0, 0xD7FF)),
    "Arabic": ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
    "Thai": ((0x0E00, 0x0E7F),),
    "Bengali": ((0x0980, 0x09FF),),
    "Devanagari": ((0x0900, 0x097F), (0xA8E0, 0xA8FF)),
    "Cyrillic": ((0x0400, 0x052F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)),
    "Greek": ((0x0370, 0x03FF), (0x1F00, 0x1FFF)),
    "Hebrew": ((0x0590, 0x05FF), (0xFB1D, 0xFB4F)),
    "Tamil": ((0x0B80, 0x0BFF),),
    "Telugu": ((0x0C00, 0x0C7F),),
    "Ethiopic": ((0x1200, 0x139F), (0x2D80, 0x2DDF)),
}

# The scripts a language's text is written in, where that is more than its own script.
SCRIPTS_OF = {
    "Japanese": ("Kana", "Han"),
}

# Frequent function words of Latin-script languages, which rarely occur in the others' text.
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    code: frozenset(words.split())
    for code, words in {
        "en": "the and of to is in that it for with you this are not be can or your as have from will",
        "it": "il di che non per una sono della con gli del le si mi come questo anche alla ma",
        "vi": "và của là không có các những được cho một này trong người với để tôi bạn như khi",
        "sw": "na ya wa kwa ni za katika la hii kuwa yako hiyo au kama lakini sana mimi wewe ili",
        "jv": "lan ing sing iku iki ora karo kanggo menawa aku kowe saka dening uga wis bakal ana",
        "fr": "le la les et des est une que pas pour dans vous qui sur avec ce il je du au",
        "de": "der die und das ist nicht ich zu den mit sie es ein eine auf für sich dem auch",
        "es": "el la los que de y en las por para una con no es se del como su al lo",
        "pt": "o os que de e em uma para não com do da se por mais como você são isso",
        "nl": "de het een en van is dat niet ik je op te zijn voor met die er maar ook",
        "id": "dan yang di ini itu untuk dengan tidak dari adalah saya anda akan ke dalam atau bisa",
    }.items()
}

MIN_LETTERS = 12
# Share of letters in foreign scripts above which a response counts as written in another language.
OTHER_SCRIPT_SHARE = 0.5
# A Latin-script response needs this many function words of one language before words decide.
MIN_FUNCTION_WORDS = 2

WORD = re.compile(r"[^\W\d_]+")


def repair_text(text: str | None) -> str:
    """Return `text` with lone surrogates and trailing replacement characters removed.

    A response cut at its token limit can end inside a multi-byte character,
    which decodes to U+FFFD. An endpoint can send a lone surrogate escape
    (`\\ud83d`), which no UTF-8 file can store. Replacement characters inside the
    text are kept, because they show where the model itself produced broken output.
    """
    if not text:
        return ""
    cleaned = "".join(character for character in text if not 0xD800 <= ord(character) <= 0xDFFF)
    return cleaned.rstrip("\ufffd")


def script_of(character: str) -> str | None:
    """Return the script of a letter by its Unicode block, or None for other characters and scripts."""
    point = ord(character)
    for script, ranges in SCRIPT_RANGES.items():
        if any(low <= point <= high for low, high in ranges):
            return script
    return None


def script_counts(text: str) -> dict[str, int]:
    """Count the letters of each script in `text`; letters of scripts not listed count as None."""
    counts: dict[str, int] = {}
    for character in text:
        if character.isalpha():
            script = script_of(character)
            counts[script] = counts.get(script, 0) + 1
    return counts


def check_language(text: str, language: str, metadata: dict | None = None) -> str:
    """Return `match`, `other` or `undetermined` for a response requested in `language`.

    `metadata` is the config's `language_metadata`, for languages that
    xlsafety does not know.
    """
    languages = known_languages(metadata)
    if language not in languages:
        return UNDETERMINED
    counts = script_counts(text)
    letters = sum(counts.values())
    if letters < MIN_LETTERS:
        return UNDETERMINED

    script = languages[language].script
    expected = SCRIPTS_OF.get(script, (script,))
    if not all(name in SCRIPT_RANGES for name in expected):
        return UNDETERMINED
    # NOTE: letters are counted one by one, so in a Chinese response with a few English words the
    # English weighs more than a reader would judge. Only a majority of foreign letters makes it `other`.
    in_expected = sum(counts.get(name, 0) for name in expected)
    if in_expected / letters <= 1 - OTHER_SCRIPT_SHARE:
        return OTHER
    if script != "Latin":
        return MATCH
    return _check_latin_words(text, language)


def _check_latin_words(text: str, language: str) -> str:
    """Tell Latin-script languages apart by their function words."""
    words = [word.lower() for word in WORD.findall(text)]
    hits = {code: sum(word in listed for word in words) for code, listed in FUNCTION_WORDS.items()}
    best = max(hits, key=lambda code: (hits[code], code == language))
    if hits[best] < MIN_FUNCTION_WORDS:
        return UNDETERMINED
    if best == language:
        return MATCH
    if language not in FUNCTION_WORDS:
        # Without a word list for the requested language, other languages' words prove nothing.
        return UNDETERMINED
    # Require a clear lead: shared words such as "di" or "la" occur in several of these languages.
    return OTHER if hits[best] >= 2 * max(hits[language], 1) else UNDETERMINED
