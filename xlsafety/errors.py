"""Exceptions raised for bad input, with messages meant for the person running the study."""


class XlsafetyError(Exception):
    """Base class for every error this package raises on purpose."""


class DatasetError(XlsafetyError):
    """The prompt dataset is missing, unreadable or invalid."""


class ConfigError(XlsafetyError):
    """The workflow configuration is invalid."""


class ModelError(XlsafetyError):
    """A model cannot be found, prepared or loaded."""


class IncompleteInputError(XlsafetyError):
    """An input file of a stage has fewer or other rows than the stage expects."""


class CellsError(XlsafetyError, ValueError):
    """The response matrix given to an IRT fit is invalid (a ValueError too, for callers of the package)."""
