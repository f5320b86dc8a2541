"""The glue between Snakemake's script directive and the package: what reaches the job's log."""

import logging
from types import SimpleNamespace

import pytest

from xlsafety.errors import ConfigError
from xlsafety.scripting import run_step


def job(tmp_path):
    return SimpleNamespace(log=[str(tmp_path / "logs" / "job.log")], rule="generate")


@pytest.fixture(autouse=True)
def restore_logging():
    yield
    logging.basicConfig(handlers=[logging.NullHandler()], force=True)


def test_unexpected_error_is_logged_with_traceback(tmp_path):
    def step(snakemake):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_step(job(tmp_path), step)

    text = (tmp_path / "logs" / "job.log").read_text()
    assert "unexpected error" in text
    assert "Traceback" in text
    assert "ValueError: boom" in text


def test_input_error_ends_job_without_traceback(tmp_path):
    def step(snakemake):
        raise ConfigError("config key x: fix it")

    with pytest.raises(SystemExit) as raised:
        run_step(job(tmp_path), step)

    text = (tmp_path / "logs" / "job.log").read_text()
    assert raised.value.code == 1
    assert "config key x: fix it" in text
    assert "Traceback" not in text


def test_rerun_keeps_earlier_attempt_in_log(tmp_path):
    def failing(snakemake):
        logging.getLogger("xlsafety.test").warning("retry 1 of 3")
        raise ConfigError("gave up")

    with pytest.raises(SystemExit):
        run_step(job(tmp_path), failing)
    run_step(job(tmp_path), lambda snakemake: logging.getLogger("xlsafety.test").info("finished"))

    text = (tmp_path / "logs" / "job.log").read_text()
    assert text.count("rule generate started") == 2
    assert text.index("retry 1 of 3") < text.index("finished")
