"""The prompt dataset: where it comes from, how it is validated, which prompts are used.

The dataset is a CSV in the MultiJail layout: `id`, `source`, `tags` (a Python
list literal of harm categories, or a comma-separated list), then one column
per language holding the parallel prompt texts.
"""

import ast
import hashlib
import logging
import os
import urllib.request
from importlib import resources
from pathlib import Path

import pandas as pd

from xlsafety.errors import DatasetError

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
    """Read and validate a dataset CSV; return one row per prompt with `tags` as lists.

    Every cell is read as text: literal strings such as "NA" or "None" stay
    prompts, and quoted cells may contain line breaks and commas.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset file {path} not found; set dataset.source to an existing CSV")
    try:
        # utf-8-sig drops a byte-order mark, which would otherwise rename the first column.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 ({error}); convert the file to UTF-8") from error
    except pd.errors.ParserError as error:
        raise DatasetError(f"{path}: not a valid CSV file ({error})") from error

    frame.columns = [column.strip() for column in frame.columns]
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise DatasetError(
            f"{path}: missing required columns {missing}; found {list(frame.columns)}. "
            "The dataset needs id, tags and one column per language."
        )

    frame["id"] = _parse_ids(frame["id"], path)
    frame["tags"] = [
        parse_tags(value, f"{path}: row with id {prompt_id}")
        for prompt_id, value in zip(frame["id"], frame["tags"])
    ]
    if "source" not in frame.columns:
        frame["source"] = path.name
    return frame


def _parse_ids(ids: pd.Series, path: Path) -> pd.Series:
    """Convert the id column to integers, naming invalid and duplicate ids."""
    stripped = ids.str.strip()
    invalid = [index + 1 for index, value in enumerate(stripped) if not value.lstrip("-").isdigit()]
    if invalid:
        raise DatasetError(
            f"{path}: id is not an integer in data rows {invalid[:20]} (1 = first row after "
            "the header); give every prompt an integer id"
        )
    parsed = stripped.astype("int64")
    duplicated = sorted(set(parsed[parsed.duplicated()]))
    if duplicated:
        raise DatasetError(f"{path}: duplicate ids {duplicated[:20]}; ids must be unique")
    return parsed


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
            "Remove the language from the config or add its column."
        )

    chosen = frame[frame["id"].isin(ids)].sort_values("id")
    texts = chosen[language].str.strip()
    empty = chosen.loc[texts == "", "id"].tolist()
    if empty:
        raise DatasetError(
            f"{path}: empty {language!r} prompt for ids {empty[:20]}; fill them in or "
            "exclude these prompts with a smaller dataset."
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
