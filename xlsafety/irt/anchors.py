"""Anchor prompts from the config: a list of ids, or a file that lists them."""

from pathlib import Path

import pandas as pd

from xlsafety.errors import ConfigError


def read_anchors(value: list | str | None) -> list[int]:
    """Return the anchor prompt ids given in the config as a list or as a file path.

    A file is either a CSV with an `id` column or plain text with one id per
    line. Blank lines and lines starting with '#' are skipped.
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return sorted({_prompt_id(item, "irt.anchors") for item in value})

    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"irt.anchors: anchor file {path} not found; give a list of prompt ids or an existing file")
    if path.suffix.lower() == ".csv":
        table = pd.read_csv(path)
        if "id" not in table.columns:
            raise ConfigError(f"irt.anchors: {path} has no 'id' column")
        items = table["id"].tolist()
    else:
        lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        items = [line for line in lines if line and not line.startswith("#")]
    return sorted({_prompt_id(item, str(path)) for item in items})


def _prompt_id(item, source: str) -> int:
    try:
        value = int(str(item).strip())
    except ValueError:
        raise ConfigError(f"{source}: anchor {item!r} is not an integer prompt id") from None
    return value
