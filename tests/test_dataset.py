import csv
import hashlib

import pandas as pd
import pytest

from xlsafety.dataset import (
    MULTIJAIL_SHA256,
    download,
    embedded_dataset_path,
    language_prompts,
    parse_tags,
    read_dataset,
    select_prompt_ids,
    sha256_of_file,
)
from xlsafety.errors import DatasetError

LANGUAGES = ["en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv"]


def write_csv(path, rows, header=("id", "source", "tags", "en", "th")):
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_multijail_reads_all_prompts(multijail_path):
    frame = read_dataset(multijail_path)

    assert len(frame) == 315
    assert frame["id"].tolist() == list(range(315))
    assert all(isinstance(tags, list) and tags for tags in frame["tags"])
    assert set(LANGUAGES) <= set(frame.columns)
    assert sha256_of_file(multijail_path) == MULTIJAIL_SHA256


def test_multijail_language_table(multijail_path):
    frame = read_dataset(multijail_path)
    prompts = language_prompts(frame, "th", select_prompt_ids(frame, 12), multijail_path)

    assert len(prompts) == 12
    assert (prompts["language"] == "th").all()
    assert prompts["text"].str.len().min() > 0


def test_embedded_dataset_covers_ten_languages():
    frame = read_dataset(embedded_dataset_path())

    assert len(frame) == 20
    for language in LANGUAGES:
        assert (frame[language].str.strip() != "").all(), language


def test_selection_spreads_across_categories(multijail_path):
    frame = read_dataset(multijail_path)
    chosen = select_prompt_ids(frame, 18)
    first_tags = frame.set_index("id").loc[chosen, "tags"].map(lambda tags: tags[0])

    assert len(chosen) == 18
    assert first_tags.nunique() >= 15
    assert chosen == select_prompt_ids(frame, 18)


def test_selection_without_limit_keeps_all(multijail_path):
    frame = read_dataset(multijail_path)

    assert select_prompt_ids(frame, None) == list(range(315))
    assert select_prompt_ids(frame, 1000) == list(range(315))


def test_tags_list_literal_and_comma_forms():
    assert parse_tags("['Theft', 'Weapons']", "row") == ["Theft", "Weapons"]
    assert parse_tags("Theft, Weapons", "row") == ["Theft", "Weapons"]
    assert parse_tags("  ", "row") == []


def test_tags_invalid_literal_names_row():
    with pytest.raises(DatasetError, match="row 7"):
        parse_tags("['Theft'", "row 7")


def test_missing_columns_named(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [["0", "x", "en text"]], header=("id", "source", "en"))

    with pytest.raises(DatasetError, match=r"missing required columns \['tags'\]"):
        read_dataset(path)


def test_duplicate_ids_named(tmp_path):
    path = write_csv(tmp_path / "dup.csv", [["1", "s", "[]", "a", "b"], ["1", "s", "[]", "c", "d"]])

    with pytest.raises(DatasetError, match=r"duplicate ids \[1\]"):
        read_dataset(path)


def test_non_integer_id_names_row(tmp_path):
    path = write_csv(tmp_path / "ids.csv", [["0", "s", "[]", "a", "b"], ["x1", "s", "[]", "c", "d"]])

    with pytest.raises(DatasetError, match=r"data rows \[2\]"):
        read_dataset(path)


def test_empty_prompt_names_ids(tmp_path):
    path = write_csv(tmp_path / "empty.csv", [["0", "s", "[]", "a", "b"], ["5", "s", "[]", "c", "  "]])
    frame = read_dataset(path)

    with pytest.raises(DatasetError, match=r"empty 'th' prompt for ids \[5\]"):
        language_prompts(frame, "th", [0, 5], path)


def test_missing_language_column_named(tmp_path):
    path = write_csv(tmp_path / "lang.csv", [["0", "s", "[]", "a", "b"]])
    frame = read_dataset(path)

    with pytest.raises(DatasetError, match="no column for language 'sw'"):
        language_prompts(frame, "sw", [0], path)


def test_missing_file_named(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_dataset(tmp_path / "absent.csv")


def test_text_cells_survive_unchanged(tmp_path):
    tricky = ["NA", "None", "line one\nline two, with comma", "مرحبا، كيف", "你好，世界。", '"quoted"']
    rows = [[str(index), "s", "[]", text, text] for index, text in enumerate(tricky)]
    path = write_csv(tmp_path / "tricky.csv", rows)

    frame = read_dataset(path)
    prompts = language_prompts(frame, "en", list(range(len(tricky))), path)

    assert len(prompts) == len(tricky)
    assert prompts["text"].tolist() == tricky


def test_byte_order_mark_ignored(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffid,source,tags,en\n0,s,[],hello\n".encode("utf-8"))

    frame = read_dataset(path)

    assert list(frame.columns[:3]) == ["id", "source", "tags"]


def test_not_utf8_rejected(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,source,tags,en\n0,s,[],caf\xe9\n".encode("latin-1"))

    with pytest.raises(DatasetError, match="not UTF-8"):
        read_dataset(path)


def test_download_checks_sha256(tmp_path, multijail_path):
    url = multijail_path.resolve().as_uri()
    target = download(url, MULTIJAIL_SHA256, tmp_path / "copy.csv")

    assert sha256_of_file(target) == MULTIJAIL_SHA256


def test_download_wrong_sha256_keeps_nothing(tmp_path, multijail_path):
    url = multijail_path.resolve().as_uri()

    with pytest.raises(DatasetError, match="does not match"):
        download(url, hashlib.sha256(b"other").hexdigest(), tmp_path / "copy.csv")
    assert list(tmp_path.iterdir()) == []


def test_download_failure_says_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match="set dataset.source to its local path"):
        download((tmp_path / "absent.csv").as_uri(), MULTIJAIL_SHA256, tmp_path / "copy.csv")
