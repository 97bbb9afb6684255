"""The kinds of error a user can meet, each with its exit code.

Every error a user can fix is raised as one of these, with a message that says what went
wrong, where (a path, a key, an address) and what to do. The CLI catches them in one place
and prints the message as a single line.
"""


class SdpflowError(Exception):
    """Base of every error sdpflow reports to a user; exit code 1."""

    exit_code = 1


class InputError(SdpflowError):
    """Bad input from the user: a missing or malformed file, a bad option; exit code 2."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration file or override that does not validate; exit code 2."""


class DataError(InputError):
    """A data set (MeasurementSet, HDF5, FITS) that is missing, malformed or unusable; exit code 2."""


class ClusterSpecError(ConfigError):
    """A cluster spec that names no backend or gives it a bad argument (``local:0``); exit code 2."""


class ClusterError(SdpflowError):
    """A Dask cluster that cannot be started or reached; exit code 3."""

    exit_code = 3


class StoreError(SdpflowError):
    """The run database cannot be opened or written; exit code 3."""

    exit_code = 3


class RunNotFound(InputError):
    """A run id that is not in the run database; exit code 2."""


class StageFailed(SdpflowError):
    """A pipeline stage failed after all its attempts; exit code 1."""
