"""Parquet tables with explicit schemas, written atomically.

Every stage writes its output through `write_table`, which writes a temporary
file next to the target and renames it, so a killed job never leaves a file
that a later run would trust.
"""

import logging
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from xlsafety.errors import IncompleteInputError

log = logging.getLogger(__name__)

PROMPTS = pa.schema(
    [
        ("id", pa.int64()),
        ("language", pa.string()),
        ("text", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("source", pa.string()),
        # How the text was made: "dataset", or "<backend>:<model>" for a translation.
        ("origin", pa.string()),
    ]
)

GENERATIONS = pa.schema(
    [
        ("configuration", pa.string()),
        ("model", pa.string()),
        ("decoding", pa.string()),
        ("language", pa.string()),
        ("id", pa.int64()),
        ("pass", pa.int32()),
        ("seed", pa.int64()),
        ("prompt_format", pa.string()),
        ("prompt_sent", pa.string()),
        ("text", pa.string()),
        # "match", "other" (written in another language than requested) or "undetermined";
        # see xlsafety/language_check.py.
        ("language_check", pa.string()),
        # Null where an API endpoint returns no finish reason or no `usage` token counts.
        pa.field("finish_reason", pa.string(), nullable=True),
        pa.field("prompt_tokens", pa.int32(), nullable=True),
        pa.field("completion_tokens", pa.int32(), nullable=True),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("max_new_tokens", pa.int32()),
        ("system_prompt", pa.string()),
        ("backend", pa.string()),
        ("model_identity", pa.string()),
    ]
)

JUDGMENTS = pa.schema(
    [
        ("judge", pa.string()),
        ("judge_version", pa.string()),
        ("configuration", pa.string()),
        ("language", pa.string()),
        ("id", pa.int64()),
        ("pass", pa.int32()),
        # 0 = invalid (empty, degenerate); 1..5 = the safety rubric, 5 = clear refusal.
        # Null when the judge model's answers gave no valid score (see unscored_reason).
        pa.field("score", pa.int8(), nullable=True),
        # Null when the score is 0 or null, because such a response is missing, not unsafe.
        ("safe", pa.bool_()),
        ("reason", pa.string()),
        # Why the row has no score (no score in the answer, out of range, ambiguous, declined); else null.
        pa.field("unscored_reason", pa.string(), nullable=True),
        # The judge model's last answer as returned; null for judges that are not a model.
        pa.field("raw_answer", pa.string(), nullable=True),
        # The judge that gave the score; in a cascade, "refusal" or the rubric judge's name.
        ("decided_by", pa.string()),
        # "as_written", or "back_translated" when the judge read an English translation of the response.
        ("text_mode", pa.string()),
        # The English translation that was judged; null when the response was judged as written.
        pa.field("judged_text", pa.string(), nullable=True),
        # Requests sent to the judge model for the row (retries included); 0 for judges that are not a model.
        ("attempts", pa.int32()),
    ]
)

CELLS = pa.schema(
    [
        ("configuration", pa.string()),
        ("id", pa.int64()),
        ("language", pa.string()),
        ("n_passes", pa.int32()),
        ("n_valid", pa.int32()),
        ("n_safe", pa.int32()),
        ("mean_score", pa.float64()),
        # Passes per rubric score 1..5, for the graded response model; score 0 is left out.
        *[(f"n_score_{score}", pa.int32()) for score in range(1, 6)],
    ]
)

PARAMETERS = pa.schema(
    [
        ("parameter", pa.string()),
        ("configuration", pa.string()),
        ("id", pa.int64()),
        ("language", pa.string()),
        ("estimate", pa.float64()),
        # Laplace standard error and 95% interval; se is 0 and the interval a
        # point where the value is fixed. alpha is estimated on the log scale,
        # so its interval is not symmetric and its se is the delta-method one.
        ("se", pa.float64()),
        ("lower", pa.float64()),
        ("upper", pa.float64()),
        # True where the value is pinned by identification (anchor prompts' tau, alpha in 1PL models).
        ("fixed", pa.bool_()),
    ]
)


def write_table(frame: pd.DataFrame, path: str | Path, schema: pa.Schema) -> None:
    """Write `frame` as parquet with `schema`, atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)

    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    pq.write_table(table, temporary)
    os.replace(temporary, path)
    log.info("wrote %d rows to %s", table.num_rows, path)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write `frame` as UTF-8 CSV, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    frame.to_csv(temporary, index=False)
    os.replace(temporary, path)


def write_text(text: str, path: str | Path) -> None:
    """Write `text` to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def read_table(path: str | Path, schema: pa.Schema) -> pd.DataFrame:
    """Read a parquet file and check that it has every column of `schema`."""
    table = pq.read_table(path)
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise IncompleteInputError(
            f"{path}: missing columns {missing}; the file was written by another version "
            "of xlsafety or by hand. Delete it and rerun the workflow to rebuild it."
        )
    return table.select(schema.names).to_pandas()


def check_row_count(frame: pd.DataFrame, path: str | Path, expected: int) -> None:
    """Raise when a stage input has another number of rows than the stage expects."""
    if len(frame) != expected:
        raise IncompleteInputError(
            f"{path}: {len(frame)} rows, expected {expected}. The file is incomplete or "
            "stale; delete it and rerun the workflow to rebuild it."
        )
