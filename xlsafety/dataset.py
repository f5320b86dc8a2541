"""The prompt dataset: where it comes from, how it is validated, which prompts are used.

The dataset is a CSV in the MultiJail layout: `id`, `source`, `tags` (a Python
list literal of harm categories, or a comma-separated list), then one column
per language holding the parallel prompt texts.
"""

import ast
import codecs
import csv
import hashlib
import io
import logging
import os
import urllib.request
from importlib import resources
from pathlib import Path

import pandas as pd

from xlsafety.errors import DatasetError
from xlsafety.languages import LANGUAGES

log = logging.getLogger(__name__)

MULTIJAIL_URL = (
    "https://raw.githubusercontent.com/DAMO-NLP-SG/multilingual-safety-for-LLMs/main/data/MultiJail.csv"
)
MULTIJAIL_SHA256 = "2798ed6fe470b80b1f486976e0fb3baa3ce008e62b6ca0abbf2e1ed5b1dfb355"

REQUIRED_COLUMNS = ("id", "tags")


def embedded_dataset_path() -> Path:
    """Return the path of the prompts shipped with the package (machine translated)."""
    return Path(str(resources.files("xlsafety").joinpath("data", "embedded_prompts.csv")))


def is_url(source: str) -> bool:
    """Tell whether a dataset source is a URL rather than a local path."""
    return source.startswith(("http://", "https://"))


def sha256_of_file(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, sha256: str, destination: str | Path, timeout: float = 60.0) -> Path:
    """Download `url` to `destination`, keeping the file only if its sha256 matches."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.partial-{os.getpid()}")

    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(temporary, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise DatasetError(
            f"download of {url} failed: {error}. Without network access, download the file "
            "elsewhere and set dataset.source to its local path."
        ) from error

    found = sha256_of_file(temporary)
    if found != sha256:
        temporary.unlink()
        raise DatasetError(
            f"{url}: sha256 {found} does not match the expected {sha256}. The file changed "
            "upstream or the download was corrupted; check the source and dataset.sha256."
        )
    os.replace(temporary, destination)
    return destination


def parse_tags(value: str, row_label: str) -> list[str]:
    """Parse a tags cell: a Python list literal such as "['Theft']", or comma-separated text."""
    text = value.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError) as error:
            raise DatasetError(f"{row_label}: tags {text!r} is not a valid list literal") from error
        if not isinstance(parsed, list) or not all(isinstance(tag, str) for tag in parsed):
            raise DatasetError(f"{row_label}: tags {text!r} must be a list of strings")
        return [tag.strip() for tag in parsed if tag.strip()]
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def read_dataset(path: str | Path) -> pd.DataFrame:
    """Read and validate a dataset CSV and return one row per prompt, with `tags` as lists.

    Every cell is read as text, so literal strings such as "NA" or "None" stay
    prompts, and quoted cells may contain line breaks and commas. A UTF-8,
    UTF-16 or UTF-32 byte-order mark selects the encoding. Without one the file
    must be UTF-8. Rows whose cells are all empty are skipped. `frame.attrs["lines"]`
    maps each prompt id to the file line where its row starts.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset file {path} not found; set dataset.source to an existing CSV")

    header, records = _csv_records(_decoded_text(path), path)
    if not records:
        raise DatasetError(f"{path}: the header has no prompt rows below it; add one row per prompt")
    frame = pd.DataFrame([cells for _, cells in records], columns=header, dtype=str)
    frame = _drop_blank_columns(frame, path)
    lines = [line for line, _ in records]

    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing required columns {missing}; found {list(frame.columns)}. "
            "The dataset needs id, tags and one column per language."
        )

    frame["id"] = _parse_ids(frame["id"], lines, path)
    frame["tags"] = [
        parse_tags(value, f"{path}: line {line} (id {prompt_id})")
        for prompt_id, value, line in zip(frame["id"], frame["tags"], lines)
    ]
    if "source" not in frame.columns:
        frame["source"] = path.name
    _warn_unknown_columns(frame, path)
    frame.attrs["lines"] = dict(zip(frame["id"].tolist(), lines))
    return frame


# Byte-order marks in the order they must be tested: the UTF-32 LE mark starts with the UTF-16 LE one.
BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _decoded_text(path: Path) -> str:
    """Decode the file by its byte-order mark, or as UTF-8, naming the encoding fix when that fails."""
    data = path.read_bytes()
    encoding = next((name for mark, name in BYTE_ORDER_MARKS if data.startswith(mark)), None)
    if encoding is None:
        encoding = _utf16_without_mark(data) or "utf-8"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise DatasetError(_encoding_message(path, data, encoding, error)) from error


def _utf16_without_mark(data: bytes) -> str | None:
    """Recognise UTF-16 or UTF-32 text without a byte-order mark by the zero bytes of the header's first character.

    The header starts with an ASCII column name, and UTF-8 text has no zero bytes there.
    """
    start = data[:4]
    if len(start) < 4:
        return None
    if start[0] != 0 and start[1:] == b"\0\0\0":
        return "utf-32-le"
    if start[:3] == b"\0\0\0" and start[3] != 0:
        return "utf-32-be"
    if start[0] != 0 and start[1] == 0:
        return "utf-16-le"
    if start[0] == 0 and start[1] != 0:
        return "utf-16-be"
    return None


def _encoding_message(path: Path, data: bytes, encoding: str, error: UnicodeDecodeError) -> str:
    line = data[: error.start].count(b"\n") + 1
    found = data[error.start : error.start + 4]
    message = f"{path}: line {line} is not valid {encoding} (bytes {found!r})."
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return f"{message} Convert the file to UTF-8, for example with iconv -f <its encoding> -t utf-8."
    return (
        f"{message} The file may be Windows-1252 (cp1252) or Latin-1, as spreadsheet programs write. "
        f"Convert it to UTF-8, for example with iconv -f cp1252 -t utf-8 {path.name} > utf8.csv, "
        "or save it as 'CSV UTF-8'."
    )


def _csv_records(text: str, path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Parse CSV text into the header and (start line, cells) records, skipping blank rows."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [column.strip() for column in next(reader, [])]
        records = []
        line = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                records.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as error:
        raise DatasetError(f"{path}: not a valid CSV file near line {reader.line_num} ({error})") from error

    if not header:
        raise DatasetError(f"{path}: the file is empty; it needs a header row with id, tags and languages")
    duplicated = sorted({column for column in header if header.count(column) > 1 and column})
    if duplicated:
        raise DatasetError(f"{path}: duplicate column names {duplicated} in the header; rename or remove them")
    _check_field_counts(records, len(header), path)
    return header, records


def _check_field_counts(records: list[tuple[int, list[str]]], expected: int, path: Path) -> None:
    ragged = [(line, len(cells)) for line, cells in records if len(cells) != expected]
    if ragged:
        shown = ", ".join(f"line {line}: {count}" for line, count in ragged[:20])
        raise DatasetError(
            f"{path}: rows with another number of cells than the header's {expected} ({shown}). "
            'Quote cells that contain commas or line breaks ("a, b"), as a CSV writer does.'
        )


def _drop_blank_columns(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Drop columns with an empty name and no content, as spreadsheets write after the last column."""
    unnamed = [position for position, column in enumerate(frame.columns) if not column]
    for position in unnamed:
        if frame.iloc[:, position].str.strip().ne("").any():
            raise DatasetError(
                f"{path}: column {position + 1} has cells but no name in the header; name it or remove it"
            )
    return frame.iloc[:, [position for position in range(frame.shape[1]) if position not in unnamed]]


def _warn_unknown_columns(frame: pd.DataFrame, path: Path) -> None:
    """Log columns that are neither fixed columns nor known language codes, since they are never read."""
    unknown = [column for column in frame.columns if column not in (*REQUIRED_COLUMNS, "source")
               and column not in LANGUAGES]
    if unknown:
        log.warning("%s: columns %s are not language codes that xlsafety knows; they are used only if "
                    "the config lists them with language_metadata", path, unknown)


def language_column_hint(columns, language: str) -> str:
    """Suggest the dataset column that probably contains `language`, such as 'EN' or 'English' for 'en'."""
    name = LANGUAGES[language].name.lower() if language in LANGUAGES else None
    for column in columns:
        if column.lower() == language or (name and column.lower() == name):
            return f" Column {column!r} looks like it; rename it to {language!r}."
    return ""


def _parse_ids(ids: pd.Series, lines: list[int], path: Path) -> pd.Series:
    """Convert the id column to integers, naming the lines of invalid and duplicate ids."""
    stripped = ids.str.strip()
    invalid = [line for line, value in zip(lines, stripped) if not value.lstrip("-").isdigit()]
    if invalid:
        raise DatasetError(
            f"{path}: id is missing or not an integer on lines {invalid[:20]} (the header is line 1); "
            "give every prompt an integer id"
        )

    parsed = stripped.astype("int64")
    duplicated = parsed[parsed.duplicated(keep=False)]
    if not duplicated.empty:
        where = {}
        for position, prompt_id in duplicated.items():
            where.setdefault(int(prompt_id), []).append(lines[position])
        shown = "; ".join(f"id {prompt_id} on lines {found}" for prompt_id, found in sorted(where.items())[:20])
        raise DatasetError(f"{path}: duplicate ids ({shown}); ids must be unique, so renumber or remove rows")
    return parsed.reset_index(drop=True)


def select_prompt_ids(frame: pd.DataFrame, limit: int | None) -> list[int]:
    """Choose up to `limit` prompt ids, spread across harm categories, deterministically.

    Prompts are grouped by their first tag; the groups are visited in name
    order, taking the smallest unused id of each, round after round. The choice
    depends only on the dataset and the limit, never on the languages.
    """
    ids = sorted(int(prompt_id) for prompt_id in frame["id"])
    if limit is None or limit >= len(ids):
        return ids

    groups: dict[str, list[int]] = {}
    for prompt_id, tags in sorted(zip(frame["id"], frame["tags"])):
        groups.setdefault(tags[0] if tags else "", []).append(int(prompt_id))

    chosen: list[int] = []
    round_index = 0
    while len(chosen) < limit:
        for category in sorted(groups):
            members = groups[category]
            if round_index < len(members) and len(chosen) < limit:
                chosen.append(members[round_index])
        round_index += 1
    return sorted(chosen)


def language_prompts(frame: pd.DataFrame, language: str, ids: list[int], path: str | Path) -> pd.DataFrame:
    """Return the prompts table of one language for the chosen ids.

    Raises DatasetError when the language has no column, or when a chosen
    prompt is empty in it.
    """
    if language not in frame.columns:
        languages = [c for c in frame.columns if c not in ("id", "tags", "source")]
        raise DatasetError(
            f"{path}: no column for language {language!r}; the dataset has {languages}. "
            f"Remove the language from the config or add its column.{language_column_hint(languages, language)}"
        )

    chosen = frame[frame["id"].isin(ids)].sort_values("id")
    texts = chosen[language].str.strip()
    empty = chosen.loc[texts == "", "id"].tolist()
    if empty:
        lines = frame.attrs.get("lines", {})
        shown = ", ".join(f"id {prompt_id} (line {lines.get(prompt_id, '?')})" for prompt_id in empty[:20])
        raise DatasetError(
            f"{path}: empty or whitespace-only {language!r} prompts: {shown}. Fill them in, "
            "or remove these rows from the dataset."
        )

    return pd.DataFrame(
        {
            "id": chosen["id"].astype("int64"),
            "language": language,
            "text": chosen[language],
            "tags": chosen["tags"],
            "source": chosen["source"],
        }
    ).reset_index(drop=True)
