"""Metadata of the languages the study knows: name, script and resource level.

Resource levels follow the MultiJail benchmark: high `zh it vi`, medium
`ar ko th`, low `bn sw jv`, and `en` as the reference.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    """One language of the study."""

    code: str
    name: str
    script: str
    resource: str


LANGUAGES: dict[str, Language] = {
    language.code: language
    for language in [
        Language("en", "English", "Latin", "reference"),
        Language("zh", "Chinese", "Han", "high"),
        Language("it", "Italian", "Latin", "high"),
        Language("vi", "Vietnamese", "Latin", "high"),
        Language("ar", "Arabic", "Arabic", "medium"),
        Language("ko", "Korean", "Hangul", "medium"),
        Language("th", "Thai", "Thai", "medium"),
        Language("bn", "Bengali", "Bengali", "low"),
        Language("sw", "Swahili", "Latin", "low"),
        Language("jv", "Javanese", "Latin", "low"),
    ]
}
