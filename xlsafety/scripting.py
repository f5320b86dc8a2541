"""The glue between Snakemake's `script:` directive and the package."""

import logging
import sys
from collections.abc import Callable

from xlsafety.errors import XlsafetyError
from xlsafety.logs import setup_logging

log = logging.getLogger("xlsafety")


def run_step(snakemake, step: Callable) -> None:
    """Run `step(snakemake)` with logging to the rule's log file.

    An XlsafetyError (bad input, with a message saying what to do) ends the
    job with that message and no traceback. Other errors are written to the
    log with their traceback, because Snakemake points the user at the log
    file, and then raised as they are.
    """
    setup_logging(snakemake.log[0] if snakemake.log else None)
    # Marks where this attempt starts in a log that keeps earlier attempts.
    log.info("rule %s started", getattr(snakemake, "rule", "?"))
    try:
        step(snakemake)
    except XlsafetyError as error:
        log.error("%s", error)
        sys.exit(1)
    except Exception:
        log.exception("unexpected error; please report it with this log")
        raise
