"""Checks shared by the workflow tests on what the checkpoints hold once every output is complete."""

from pathlib import Path


def assert_only_generations_kept(results: Path) -> None:
    """Assert that each generation output is kept as its checkpoint's only part, and that no other checkpoint is left."""
    # Judge checkpoints add suffixes such as -attempt0, so the pattern covers them too.
    folders = sorted(results.rglob("*.parts*"))
    assert folders, "each generation output must be kept in its checkpoint folder"
    for folder in folders:
        output = folder.with_name(folder.name.removeprefix(".").removesuffix(".parts"))
        assert folder.parent.parent.name == "generations", f"{folder}: only generation checkpoints may stay"
        assert sorted(path.name for path in folder.glob("part-*")) == ["part-000000.parquet"], folder
        assert (folder / "part-000000.parquet").read_bytes() == output.read_bytes(), folder
