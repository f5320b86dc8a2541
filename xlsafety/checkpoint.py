"""Checkpoints of long jobs: finished rows saved as they come, so a killed job resumes.

A job appends each finished batch as a parquet part in a folder next to its
output. A restarted job reads the parts back and only does the rest. The parts
carry a fingerprint of the settings that determine their content (model,
decoding, seed), and parts with another fingerprint are discarded, so a
changed configuration never reuses stale rows. What varies by row (prompt
text, pass, row seed) is checked row by row when the rows are read back. A generation job keeps its
complete output there as its only part (`Checkpoint.keep`), so that a rerun
with more passes generates only the new ones.
"""

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"


def fingerprint_of(settings: dict) -> str:
    """Hash JSON-serialisable settings into a short stable fingerprint."""
    canonical = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def checkpoint_folder(output: str | Path) -> Path:
    """Return the checkpoint folder of an output file: a hidden sibling named after it."""
    output = Path(output)
    return output.with_name(f".{output.name}.parts")


class Checkpoint:
    """Append-only parquet parts of finished rows in `folder`."""

    def __init__(self, folder: str | Path, fingerprint: str):
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self._next_part = 0

    def load(self) -> pd.DataFrame:
        """Return the rows saved by earlier attempts, or an empty frame.

        Parts with another fingerprint are deleted, because they were written
        for other settings.
        """
        marker = self.folder / FINGERPRINT_FILE
        if self.folder.exists() and (not marker.exists() or marker.read_text().strip() != self.fingerprint):
            log.warning("discarding checkpoint %s: it was written for other settings", self.folder)
            shutil.rmtree(self.folder)

        self._create()
        parts = sorted(self.folder.glob("part-*.parquet"))
        self._next_part = len(parts)
        if not parts:
            return pd.DataFrame()
        rows = pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True)
        log.info("resuming from %s: %d rows in %d parts", self.folder, len(rows), len(parts))
        return rows

    def _create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / FINGERPRINT_FILE).write_text(self.fingerprint + "\n")

    def append(self, rows: list[dict]) -> None:
        """Save finished rows as the next part, atomically."""
        if not self.folder.exists():
            self._create()
        path = self.folder / f"part-{self._next_part:06d}.parquet"
        temporary = path.with_name(f".{path.name}.partial")
        pd.DataFrame(rows).to_parquet(temporary, index=False)
        os.replace(temporary, path)
        self._next_part += 1

    def remove(self) -> None:
        """Delete the checkpoint once the job's output is complete."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def keep(self, output: str | Path) -> None:
        """Replace the parts with the job's complete `output`, so that a later run reuses its rows.

        Snakemake deletes an output before it runs the job again, for example
        after more passes were configured. The rows kept here let that run
        send only the new requests. The part is a hard link to the output,
        which costs no disk space, or a copy where the file system has no
        hard links.
        """
        for earlier in self.folder.glob("part-*.parquet"):
            earlier.unlink()
        self._create()
        part = self.folder / "part-000000.parquet"
        try:
            os.link(output, part)
        except OSError:
            temporary = part.with_name(f".{part.name}.partial")
            shutil.copyfile(output, temporary)
            os.replace(temporary, part)
        self._next_part = 1
