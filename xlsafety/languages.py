"""Metadata of the languages the study can use: name, script, resource level and NLLB code.

The ten MultiJail languages keep the resource levels that the MultiJail
benchmark gives them: high `zh it vi`, medium `ar ko th`, low `bn sw jv`, and
`en` as the reference. The other languages are placed by the same kind of
rule, their estimated share of the Common Crawl corpus: above 1% is high,
above 0.1% is medium, anything less is low.

NOTE: those shares are estimates that were not checked against a particular
crawl, and they change between crawls, so a language near a boundary, such as
Indonesian, Turkish or Hindi, may belong one level up or down. Override a
level under `language_metadata` in the config where a study needs another one.

`nllb` is the FLORES-200 code that NLLB translation models use for the
language, such as `fra_Latn`.
"""

from dataclasses import dataclass

RESOURCE_LEVELS = ("reference", "high", "medium", "low")


@dataclass(frozen=True)
class Language:
    """One language the study can use."""

    code: str
    name: str
    script: str
    resource: str
    nllb: str | None = None


LANGUAGES: dict[str, Language] = {
    language.code: language
    for language in [
        # The ten MultiJail languages, with the benchmark's levels.
        Language("en", "English", "Latin", "reference", "eng_Latn"),
        Language("zh", "Chinese", "Han", "high", "zho_Hans"),
        Language("it", "Italian", "Latin", "high", "ita_Latn"),
        Language("vi", "Vietnamese", "Latin", "high", "vie_Latn"),
        Language("ar", "Arabic", "Arabic", "medium", "arb_Arab"),
        Language("ko", "Korean", "Hangul", "medium", "kor_Hang"),
        Language("th", "Thai", "Thai", "medium", "tha_Thai"),
        Language("bn", "Bengali", "Bengali", "low", "ben_Beng"),
        Language("sw", "Swahili", "Latin", "low", "swh_Latn"),
        Language("jv", "Javanese", "Latin", "low", "jav_Latn"),
        # Further languages, with levels estimated from their Common Crawl share.
        Language("fr", "French", "Latin", "high", "fra_Latn"),
        Language("de", "German", "Latin", "high", "deu_Latn"),
        Language("es", "Spanish", "Latin", "high", "spa_Latn"),
        Language("pt", "Portuguese", "Latin", "high", "por_Latn"),
        Language("ru", "Russian", "Cyrillic", "high", "rus_Cyrl"),
        Language("ja", "Japanese", "Japanese", "high", "jpn_Jpan"),
        Language("pl", "Polish", "Latin", "high", "pol_Latn"),
        Language("nl", "Dutch", "Latin", "high", "nld_Latn"),
        Language("cs", "Czech", "Latin", "high", "ces_Latn"),
        Language("id", "Indonesian", "Latin", "high", "ind_Latn"),
        Language("tr", "Turkish", "Latin", "high", "tur_Latn"),
        Language("uk", "Ukrainian", "Cyrillic", "medium", "ukr_Cyrl"),
        Language("fa", "Persian", "Arabic", "medium", "pes_Arab"),
        Language("sv", "Swedish", "Latin", "medium", "swe_Latn"),
        Language("ro", "Romanian", "Latin", "medium", "ron_Latn"),
        Language("hu", "Hungarian", "Latin", "medium", "hun_Latn"),
        Language("el", "Greek", "Greek", "medium", "ell_Grek"),
        Language("he", "Hebrew", "Hebrew", "medium", "heb_Hebr"),
        Language("hi", "Hindi", "Devanagari", "medium", "hin_Deva"),
        Language("ur", "Urdu", "Arabic", "low", "urd_Arab"),
        Language("ta", "Tamil", "Tamil", "low", "tam_Taml"),
        Language("te", "Telugu", "Telugu", "low", "tel_Telu"),
        Language("mr", "Marathi", "Devanagari", "low", "mar_Deva"),
        Language("ne", "Nepali", "Devanagari", "low", "npi_Deva"),
        Language("tl", "Tagalog", "Latin", "low", "tgl_Latn"),
        Language("am", "Amharic", "Ethiopic", "low", "amh_Ethi"),
        Language("ha", "Hausa", "Latin", "low", "hau_Latn"),
        Language("yo", "Yoruba", "Latin", "low", "yor_Latn"),
        Language("zu", "Zulu", "Latin", "low", "zul_Latn"),
    ]
}


def known_languages(extra: dict | None = None) -> dict[str, Language]:
    """Return the built-in metadata updated with the config's `language_metadata` entries.

    An entry of `extra` (code -> {name, script, resource, nllb_code}) adds a
    language or replaces the built-in metadata of one.
    """
    languages = dict(LANGUAGES)
    for code, entry in (extra or {}).items():
        languages[code] = Language(
            code=code,
            name=entry["name"],
            script=entry["script"],
            resource=entry["resource"],
            nllb=entry.get("nllb_code") or getattr(LANGUAGES.get(code), "nllb", None),
        )
    return languages
