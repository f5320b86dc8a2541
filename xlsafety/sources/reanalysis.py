"""Import judged passes released by another study, in long format, for reanalysis.

The file has one row per judged pass: the test taker (a model configuration),
the prompt id, the language, the pass number, the judge's rubric score 0..5,
the prompt text and the prompt's harm categories (tags), and optionally the
judge's reason. `source.reanalysis.columns` in the config lists, for each of
these, the column names that are accepted (case and surrounding spaces are
ignored), so files that call the score `judge_score` or the taker `model`
load without changes.

The workflow learns the configuration and language names when it starts, by
reading only those two columns (`study_names`, cached by file size and
modification time). A URL source is downloaded at that point, once, and
checked against its sha256.
"""

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from xlsafety.dataset import download, is_url, parse_tags, sha256_of_file
from xlsafety.errors import ConfigError, DatasetError
from xlsafety.languages import known_languages
from xlsafety.sources import REANALYSIS, Source, check_languages_known
from xlsafety.sources.tables import judgments_frame

log = logging.getLogger(__name__)

REQUIRED = ("configuration", "id", "language", "pass", "score", "prompt")
OPTIONAL = ("tags", "reason")
INTEGER_COLUMNS = ("id", "pass", "score")
KEY = ["configuration", "id", "language", "pass"]
SHOWN = 10

FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
}
DOWNLOAD_FOLDER = Path("results/reanalysis/download")
NAMES_CACHE = Path("results/reanalysis/.names-cache.json")


def file_format(path: str | Path, declared: str) -> str:
    """Return csv, tsv, parquet or jsonl: `declared`, or guessed from the suffix (before .gz) when auto."""
    if declared != "auto":
        return declared
    suffixes = [suffix.lower() for suffix in Path(str(path)).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    found = FORMATS.get(suffixes[-1] if suffixes else "")
    if found is None:
        raise ConfigError(
            f"config key source.reanalysis.format: cannot tell the format of {path} from its suffix; "
            f"set format to one of csv, tsv, parquet or jsonl"
        )
    return found


def local_data_file(settings: dict, workdir: Path) -> Path:
    """Return the local path of the file, downloading a URL source once and checking sha256s."""
    source = settings["path"]
    if not is_url(source):
        path = Path(source) if Path(source).is_absolute() else workdir / source
        if not path.is_file():
            raise DatasetError(f"config key source.reanalysis.path: file {source} not found")
        if settings["sha256"]:
            _check_sha256(path, settings["sha256"], workdir)
        return path

    name = Path(source.split("?", 1)[0]).name or "judged"
    path = workdir / DOWNLOAD_FOLDER / name
    if path.is_file() and _verified_sha256(path, workdir) == settings["sha256"]:
        return path
    if path.is_file() and sha256_of_file(path) == settings["sha256"]:
        _remember_sha256(path, settings["sha256"], workdir)
        return path
    download(source, settings["sha256"], path)
    _remember_sha256(path, settings["sha256"], workdir)
    return path


def _check_sha256(path: Path, expected: str, workdir: Path) -> None:
    if _verified_sha256(path, workdir) == expected:
        return
    found = sha256_of_file(path)
    if found != expected:
        raise DatasetError(
            f"{path}: sha256 {found} does not match source.reanalysis.sha256 {expected}; "
            "the file changed, or the checksum in the config belongs to another file"
        )
    _remember_sha256(path, expected, workdir)


def _file_stamp(path: Path) -> dict:
    status = path.stat()
    return {"path": str(path.resolve()), "size": status.st_size, "mtime_ns": status.st_mtime_ns}


def _read_cache(workdir: Path) -> dict:
    try:
        return json.loads((workdir / NAMES_CACHE).read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict, workdir: Path) -> None:
    path = workdir / NAMES_CACHE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.partial")
    temporary.write_text(json.dumps(cache, indent=1))
    temporary.replace(path)


def _verified_sha256(path: Path, workdir: Path) -> str | None:
    entry = _read_cache(workdir).get("sha256", {})
    return entry.get("sha256") if entry.get("stamp") == _file_stamp(path) else None


def _remember_sha256(path: Path, sha256: str, workdir: Path) -> None:
    cache = _read_cache(workdir)
    cache["sha256"] = {"stamp": _file_stamp(path), "sha256": sha256}
    _write_cache(cache, workdir)


def resolve_columns(header: list[str], mapping: dict, path: str | Path) -> dict[str, str]:
    """Return {field: column of the file} for the fields of `mapping` (field -> accepted name or names)."""
    by_name = {str(column).strip().lower(): column for column in header}
    resolved = {}
    for field in (*REQUIRED, *OPTIONAL):
        accepted = mapping[field]
        accepted = [accepted] if isinstance(accepted, str) else list(accepted)
        found = next((by_name[name.strip().lower()] for name in accepted if name.strip().lower() in by_name), None)
        if found is not None:
            resolved[field] = found
        elif field in REQUIRED:
            raise DatasetError(
                f"{path}: no column for {field} (accepted names: {accepted}; columns: {list(header)}). "
                f"Add the file's column name to source.reanalysis.columns.{field} in the config."
            )
    return resolved


def read_columns(path: Path, fmt: str, mapping: dict, fields: tuple[str, ...]) -> pd.DataFrame:
    """Read the columns of `fields` that the file has, renamed to the field names, as raw values."""
    header = _header(path, fmt)
    resolved = resolve_columns(header, mapping, path)
    columns = {field: resolved[field] for field in fields if field in resolved}
    try:
        frame = _read(path, fmt, list(columns.values()))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read it as {fmt} ({error})") from error
    return frame[list(columns.values())].set_axis(list(columns), axis=1)


def _header(path: Path, fmt: str) -> list[str]:
    try:
        if fmt == "parquet":
            return list(pq.read_schema(path).names)
        if fmt == "jsonl":
            return list(pd.read_json(path, lines=True, nrows=1, dtype=False).columns)
        return list(pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", nrows=0, encoding="utf-8-sig").columns)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read its header as {fmt} ({error})") from error


def _read(path: Path, fmt: str, columns: list[str]) -> pd.DataFrame:
    if fmt == "parquet":
        return pq.read_table(path, columns=columns).to_pandas()
    if fmt == "jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    # Every cell is read as text, so that a prompt such as "NA" stays a prompt; empty cells are missing.
    return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", usecols=columns, dtype=str,
                       keep_default_na=False, encoding="utf-8-sig")


def configuration_id(name: str) -> str:
    """Return the configuration id of a test taker: `{model}_{decoding}` in lowercase letters, digits, '.', '-'.

    The text before the first underscore is the model and the rest the
    decoding variant (`default` if there is none). Other characters become '-'.
    """
    model, _, variant = name.strip().lower().partition("_")
    model, variant = _slug(model), _slug(variant) or "default"
    if not model:
        raise ValueError(f"test taker {name!r} has no letters or digits before its first underscore")
    return f"{model}_{variant}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text).strip("-.")


def study_names(path: Path, settings: dict, workdir: Path) -> dict[str, dict[str, int]]:
    """Return {"configuration": {name: first row}, "language": {value: first row}} of the file, cached.

    Rows count from 1, the first row after the header.
    """
    fmt = file_format(path, settings["format"])
    stamp = {**_file_stamp(path), "format": fmt, "columns": settings["columns"]}
    cache = _read_cache(workdir)
    if cache.get("names", {}).get("stamp") == stamp:
        return cache["names"]["names"]

    frame = read_columns(path, fmt, settings["columns"], ("configuration", "language"))
    names = {}
    for field in ("configuration", "language"):
        values = frame[field].astype("string").str.strip()
        missing = _missing(frame[field])
        _raise_for_rows(path, settings, field, np.flatnonzero(missing), "a missing value",
                        "Fill in every row or remove the incomplete rows.")
        first = values.drop_duplicates()
        names[field] = {str(value): int(row) + 1 for row, value in first.items()}

    cache["names"] = {"stamp": stamp, "names": names}
    _write_cache(cache, workdir)
    return names


def prepare_reanalysis(config: dict, workdir: Path) -> Source:
    """Check the reanalysis settings, set config languages from the file, describe the source."""
    settings = config["source"]["reanalysis"]
    if not settings["path"]:
        raise ConfigError("config key source.reanalysis.path: set it to the judged file, a local path or a URL")
    if is_url(settings["path"]) and not settings["sha256"]:
        raise ConfigError(
            f"config key source.reanalysis.sha256: the URL source {settings['path']} needs the file's "
            "sha256, so that a changed or corrupted download is noticed"
        )

    path = local_data_file(settings, workdir)
    names = study_names(path, settings, workdir)
    config["languages"] = study_languages(config, path, names["language"])
    check_languages_known(config)

    configurations = configuration_specs(path, settings, names["configuration"])
    label = f"imported from {settings['path']} (judge `{settings['judge']}`)"
    return Source(REANALYSIS, configurations, settings["judge"], str(path), label)


def study_languages(config: dict, path: Path, found: dict[str, int]) -> list[str]:
    """Return the studied languages: the file's (or the configured subset), reference first.

    An unknown language is an error that names the first row with it.
    """
    settings = config["source"]["reanalysis"]
    metadata = known_languages(config.get("language_metadata"))
    for value, row in found.items():
        if value.lower() not in metadata:
            raise DatasetError(
                f"{path}: data row {row}, column language ({_column_label(settings, 'language')}): language "
                f"{value!r} is unknown. Use a language "
                f"code (known: {sorted(metadata)}), or add it under language_metadata in the config."
            )

    # In the order of the language metadata (MultiJail's languages first), whatever the file's row order.
    order = {code: position for position, code in enumerate(metadata)}
    codes = sorted({value.lower() for value in found}, key=order.__getitem__)
    if settings["languages"] is not None:
        absent = [language for language in settings["languages"] if language not in codes]
        if absent:
            raise ConfigError(
                f"config key source.reanalysis.languages: {absent} have no rows in {path} (found: {codes})"
            )
        codes = [code for code in codes if code in settings["languages"]]

    reference = config["reference_language"]
    if reference not in codes:
        raise ConfigError(
            f"config key reference_language: {reference!r} has no rows in {path} (languages: {codes}); "
            "set reference_language to one of them"
        )
    return [reference, *(code for code in codes if code != reference)]


def configuration_specs(path: Path, settings: dict, found: dict[str, int]) -> dict[str, dict]:
    """Map each test taker to its configuration id; two takers with one id are an error."""
    specs, origin = {}, {}
    for name, row in found.items():
        try:
            identifier = configuration_id(name)
        except ValueError as error:
            raise DatasetError(f"{path}: data row {row}, column configuration: {error}") from None
        if identifier in specs:
            raise DatasetError(
                f"{path}: test takers {origin[identifier]!r} and {name!r} both become configuration "
                f"{identifier!r}; rename one of them in the file"
            )
        model, decoding = identifier.split("_", 1)
        specs[identifier] = {"model": model, "decoding": decoding, "origin": "imported", "name": name}
        origin[identifier] = name
    return dict(sorted(specs.items()))


def read_judged(path: Path, settings: dict, languages: list[str], known: set[str]) -> pd.DataFrame:
    """Read and validate the whole file; return the rows of `languages` with typed fields.

    `known` holds the language codes with metadata; rows of other known
    languages are valid but left out.

    Errors name the file, the data rows (1 = first row after the header) and the
    column: missing values, non-integer ids or passes, scores outside 0..5,
    unknown languages and duplicate (configuration, id, language, pass) rows.
    """
    fmt = file_format(path, settings["format"])
    raw = read_columns(path, fmt, settings["columns"], (*REQUIRED, *OPTIONAL))

    for field in REQUIRED:
        _raise_for_rows(path, settings, field, np.flatnonzero(_missing(raw[field])), "a missing value",
                        "Fill in every row or remove the incomplete rows.")
    frame = pd.DataFrame({field: raw[field].astype("string").str.strip() for field in ("configuration", "prompt")})
    frame["language"] = raw["language"].astype("string").str.strip().str.lower()
    for field in INTEGER_COLUMNS:
        frame[field] = _integers(path, settings, field, raw[field])

    _check_ranges(path, settings, frame)
    frame["tags"] = raw["tags"] if "tags" in raw else ""
    frame["reason"] = raw["reason"].fillna("").astype(str) if "reason" in raw else ""

    unknown = ~frame["language"].isin(known)
    _raise_for_rows(path, settings, "language", np.flatnonzero(unknown), "an unknown language",
                    "Use language codes, or add the language under language_metadata in the config.")
    duplicated = frame.duplicated(KEY, keep=False)
    _raise_for_rows(path, settings, "pass", np.flatnonzero(duplicated),
                    "rows that repeat a (configuration, id, language, pass)",
                    "Each pass must appear once; remove the repeated rows or number the passes.")

    kept = frame["language"].isin(languages)
    if not kept.all():
        log.info("%s: %d rows of languages outside %s left out", path, int((~kept).sum()), languages)
    return frame[kept].reset_index(drop=True)


def _missing(values: pd.Series) -> np.ndarray:
    text = values.astype("string").str.strip()
    return (values.isna() | text.isna() | (text == "")).to_numpy()


def _integers(path: Path, settings: dict, field: str, values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
    invalid = numbers.isna() | (numbers != np.round(numbers))
    _raise_for_rows(path, settings, field, np.flatnonzero(invalid.to_numpy()), "a value that is not an integer",
                    "Give whole numbers.", values)
    return numbers.astype("int64")


def _check_ranges(path: Path, settings: dict, frame: pd.DataFrame) -> None:
    outside = ~frame["score"].between(0, 5)
    _raise_for_rows(path, settings, "score", np.flatnonzero(outside.to_numpy()), "a score outside 0..5",
                    "Scores are the 0..5 safety rubric (0 = invalid response, 5 = clear refusal).",
                    frame["score"])
    negative = frame["pass"] < 0
    _raise_for_rows(path, settings, "pass", np.flatnonzero(negative.to_numpy()), "a negative pass number",
                    "Number the passes of each cell from 0 or 1.", frame["pass"])


def _raise_for_rows(path, settings, field, rows, problem, fix, values=None) -> None:
    """Raise DatasetError naming the file, the first rows (counted from 1) and the column, if `rows` is not empty."""
    if len(rows) == 0:
        return
    shown = [int(row) + 1 for row in rows[:SHOWN]]
    more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    examples = ""
    if values is not None:
        examples = f" (values {[str(values.iloc[row]) for row in rows[:SHOWN]]})"
    raise DatasetError(
        f"{path}: column {field} ({_column_label(settings, field)}) has {problem} in data rows "
        f"{shown}{more}{examples}. {fix}"
    )


def _column_label(settings: dict, field: str) -> str:
    """Return the accepted column names of a field, as the file may use any of them."""
    accepted = settings["columns"][field]
    return accepted if isinstance(accepted, str) else " or ".join(accepted)


def import_study(path: Path, settings: dict, languages: list[str],
                 known: set[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return the judgments, the prompts and the configuration names of the file's validated rows."""
    frame = read_judged(path, settings, languages, known)
    names = frame["configuration"].drop_duplicates()
    identifiers = {name: configuration_id(name) for name in names}
    frame["configuration_name"] = frame["configuration"]
    frame["configuration"] = frame["configuration"].map(identifiers)

    version = f"imported {Path(path).name}"
    judgments = judgments_frame(frame, settings["judge"], version)
    configurations = (
        frame.groupby(["configuration", "configuration_name"], sort=True)
        .agg(rows=("pass", "size"), languages=("language", "nunique"), prompts=("id", "nunique"))
        .reset_index()
    )
    return judgments, prompt_rows(frame, path), configurations


def prompt_rows(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Return one PROMPTS row per (id, language), with the first text and the first tags of each prompt."""
    texts = frame.drop_duplicates(["id", "language", "prompt"])
    varying = texts.duplicated(["id", "language"]).sum()
    if varying:
        log.warning("%s: %d (id, language) pairs have more than one prompt text; the first one is used",
                    path, varying)

    tags = {}
    for row in frame.drop_duplicates("id").itertuples(index=False):
        tags[row.id] = _tags(row.tags, f"{path}: prompt id {row.id}")
    prompts = texts.drop_duplicates(["id", "language"])
    return pd.DataFrame({
        "id": prompts["id"].to_numpy(),
        "language": prompts["language"].to_numpy(),
        "text": prompts["prompt"].astype(str).to_numpy(),
        "tags": [tags[prompt] for prompt in prompts["id"]],
        "source": Path(path).name,
        "origin": "dataset",
    })


def _tags(value, label: str) -> list[str]:
    """Parse tags given as a list (parquet, JSON) or as text (a list literal or comma-separated)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(tag).strip() for tag in value if str(tag).strip()]
    return parse_tags(str(value), label)
