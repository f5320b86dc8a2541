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

    with pytest.raises(DatasetError, match=r"duplicate ids \(id 1 on lines \[2, 3\]\)"):
        read_dataset(path)


def test_non_integer_id_names_row(tmp_path):
    path = write_csv(tmp_path / "ids.csv", [["0", "s", "[]", "a", "b"], ["x1", "s", "[]", "c", "d"]])

    with pytest.raises(DatasetError, match=r"not an integer on lines \[3\]"):
        read_dataset(path)


def test_empty_prompt_names_ids(tmp_path):
    path = write_csv(tmp_path / "empty.csv", [["0", "s", "[]", "a", "b"], ["5", "s", "[]", "c", "  "]])
    frame = read_dataset(path)

    with pytest.raises(DatasetError, match=r"whitespace-only 'th' prompts: id 5 \(line 3\)"):
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

    with pytest.raises(DatasetError, match=r"line 2 is not valid utf-8.*iconv -f cp1252 -t utf-8"):
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


ROWS_TEXT = 'id,source,tags,en,th\n0,s,"[\'Theft\']",café “quoted”,สวัสดี\n1,s,"Fraud, Theft",null,None\n'
EXPECTED_ROWS = [
    {"id": 0, "source": "s", "tags": ["Theft"], "en": "café “quoted”", "th": "สวัสดี"},
    {"id": 1, "source": "s", "tags": ["Fraud", "Theft"], "en": "null", "th": "None"},
]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
def test_unicode_encodings_read_alike(tmp_path, encoding):
    path = tmp_path / f"{encoding}.csv"
    path.write_bytes(ROWS_TEXT.encode(encoding))

    frame = read_dataset(path)

    assert frame.to_dict("records") == EXPECTED_ROWS


def test_cp1252_names_line_and_fix(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("id,source,tags,en\n0,s,[],fine\n1,s,[],café “quoted”\n".encode("cp1252"))

    with pytest.raises(DatasetError) as raised:
        read_dataset(path)

    message = str(raised.value)
    assert str(path) in message
    assert "line 3" in message
    assert "cp1252" in message
    assert "iconv -f cp1252 -t utf-8" in message


def test_missing_markers_stay_text(tmp_path):
    markers = ["NA", "N/A", "None", "null", "NULL", "nan", "NaN", "#N/A", "-"]
    path = write_csv(tmp_path / "markers.csv", [[str(i), "s", "[]", text, text] for i, text in enumerate(markers)])

    frame = read_dataset(path)
    prompts = language_prompts(frame, "th", list(range(len(markers))), path)

    assert prompts["text"].tolist() == markers
    assert prompts["text"].map(type).eq(str).all()


def test_multi_line_cells_keep_rows_and_line_numbers(tmp_path):
    rows = [["0", "s", "[]", "first\nsecond\nthird", "a"], ["1", "s", "[]", "b", "   "]]
    path = write_csv(tmp_path / "multi.csv", rows)
    frame = read_dataset(path)

    assert frame["en"].tolist() == ["first\nsecond\nthird", "b"]
    assert frame.attrs["lines"] == {0: 2, 1: 5}
    with pytest.raises(DatasetError, match=r"id 1 \(line 5\)"):
        language_prompts(frame, "th", [0, 1], path)


def test_whitespace_only_prompt_rejected(tmp_path):
    path = write_csv(tmp_path / "blank.csv", [["0", "s", "[]", "a", "\t \n "]])
    frame = read_dataset(path)

    with pytest.raises(DatasetError, match=r"empty or whitespace-only 'th' prompts: id 0 \(line 2\)"):
        language_prompts(frame, "th", [0], path)


def test_duplicate_ids_name_every_line(tmp_path):
    rows = [["3", "s", "[]", "a", "b"], ["4", "s", "[]", "a", "b"], ["3", "s", "[]", "c", "d"]]
    path = write_csv(tmp_path / "dup.csv", rows)

    with pytest.raises(DatasetError, match=r"id 3 on lines \[2, 4\]"):
        read_dataset(path)


def test_duplicate_column_names_rejected(tmp_path):
    path = write_csv(tmp_path / "cols.csv", [["0", "s", "[]", "a", "b"]], header=("id", "source", "tags", "en", "en"))

    with pytest.raises(DatasetError, match=r"duplicate column names \['en'\]"):
        read_dataset(path)


def test_unquoted_commas_name_lines(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("id,source,tags,en\n0,s,[],fine\n1,s,[],a, b\n2,s,[]\n", encoding="utf-8")

    with pytest.raises(DatasetError, match=r"header's 4 \(line 3: 5, line 4: 3\)"):
        read_dataset(path)


def test_blank_rows_and_trailing_empty_column_skipped(tmp_path):
    path = tmp_path / "spreadsheet.csv"
    path.write_text("id,source,tags,en,\n0,s,[],a,\n\n,,,,\n1,s,[],b,\n", encoding="utf-8")

    frame = read_dataset(path)

    assert frame["id"].tolist() == [0, 1]
    assert list(frame.columns) == ["id", "source", "tags", "en"]
    assert frame.attrs["lines"] == {0: 2, 1: 5}


def test_unnamed_column_with_cells_rejected(tmp_path):
    path = tmp_path / "unnamed.csv"
    path.write_text("id,source,tags,en,\n0,s,[],a,stray\n", encoding="utf-8")

    with pytest.raises(DatasetError, match="column 5 has cells but no name"):
        read_dataset(path)


def test_empty_file_rejected(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    with pytest.raises(DatasetError, match="the file is empty"):
        read_dataset(path)


def test_tag_forms(tmp_path):
    rows = [["0", "s", "['Theft', 'Fraud']", "a"], ["1", "s", '["Theft", "Fraud"]', "b"],
            ["2", "s", "Theft, Fraud", "c"], ["3", "s", "Theft", "d"], ["4", "s", "", "e"]]
    path = write_csv(tmp_path / "tags.csv", rows, header=("id", "source", "tags", "en"))

    frame = read_dataset(path)

    assert frame["tags"].tolist() == [["Theft", "Fraud"]] * 3 + [["Theft"], []]


def test_bad_tag_literal_names_line(tmp_path):
    path = write_csv(tmp_path / "tags.csv", [["0", "s", "[]", "a"], ["1", "s", "['Theft'", "b"]],
                     header=("id", "source", "tags", "en"))

    with pytest.raises(DatasetError, match=r"line 3 \(id 1\): tags"):
        read_dataset(path)


def test_unknown_language_column_warned_and_hinted(tmp_path, caplog):
    path = write_csv(tmp_path / "upper.csv", [["0", "s", "[]", "a", "b"]], header=("id", "source", "tags", "EN", "notes"))

    frame = read_dataset(path)

    assert "['EN', 'notes']" in caplog.text
    with pytest.raises(DatasetError, match=r"Column 'EN' looks like it; rename it to 'en'"):
        language_prompts(frame, "en", [0], path)


def test_header_without_rows_rejected(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("id,source,tags,en\n\n", encoding="utf-8")

    with pytest.raises(DatasetError, match="no prompt rows"):
        read_dataset(path)
