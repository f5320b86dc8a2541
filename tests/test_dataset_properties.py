"""Property-based tests of the dataset reader and the refusal judge on arbitrary text."""

import csv
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlsafety.dataset import language_prompts, parse_tags, read_dataset
from xlsafety.judges.refusal import RefusalJudge

# Any text a CSV cell can hold: every Unicode character but NUL and lone surrogates,
# including line breaks, quotes, commas and non-Latin punctuation.
CELL = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=60,
).filter(lambda text: text.strip() != "")

TAG = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "Zs")), min_size=1, max_size=20).map(str.strip).filter(bool)

LONG_RUN = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@LONG_RUN
@given(texts=st.lists(CELL, min_size=1, max_size=8))
def test_cells_round_trip_byte_identical(tmp_path_factory, texts):
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["id", "source", "tags", "en"])
        writer.writerows([[index, "s", "[]", text] for index, text in enumerate(texts)])

    frame = read_dataset(path)
    prompts = language_prompts(frame, "en", list(range(len(texts))), path)

    assert len(prompts) == len(texts)
    assert [text.encode() for text in prompts["text"]] == [text.encode() for text in texts]


@LONG_RUN
@given(tags=st.lists(TAG, max_size=5))
def test_tags_list_literal_round_trip(tags):
    assert parse_tags(repr(tags), "row") == tags


@LONG_RUN
@given(tags=st.lists(TAG.filter(lambda tag: "," not in tag and not tag.startswith("[")), max_size=5))
def test_tags_comma_form_round_trip(tags):
    assert parse_tags(", ".join(tags), "row") == tags


JUDGE = RefusalJudge(["en", "th", "zh"])


@LONG_RUN
@given(text=st.text(max_size=300), language=st.sampled_from(["en", "th", "zh"]))
def test_judge_scores_any_text_on_the_rubric(text, language):
    verdict = JUDGE.score(text, language)

    assert verdict.score in (0, 2, 5)
    assert verdict.reason


@LONG_RUN
@given(texts=st.lists(CELL, min_size=1, max_size=6), encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16",
                                                                          "utf-16-le", "utf-16-be", "utf-32",
                                                                          "utf-32-le"]))
def test_unicode_encodings_round_trip(tmp_path_factory, texts, encoding):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["id", "source", "tags", "en"])
    writer.writerows([[index, "s", "[]", text] for index, text in enumerate(texts)])
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    path.write_bytes(buffer.getvalue().encode(encoding))

    frame = read_dataset(path)

    assert frame["en"].tolist() == texts
