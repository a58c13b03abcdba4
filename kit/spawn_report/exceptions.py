"""The kit's errors. None of them may escape the command line as a traceback."""

from __future__ import annotations


class ReportError(Exception):
    """Something could not be reported; the message says what and why."""


class SettingsError(ReportError):
    """A setting (environment variable or option) is malformed; the message names it."""


class IdentityError(ReportError):
    """The worker cannot tell which array, index or instance it is."""


class MetadataUnavailable(ReportError):
    """The instance metadata service does not answer (not on EC2, or it is disabled)."""


class GpuError(ReportError):
    """`nvidia-smi` is missing, failed, or printed something that is not its CSV."""
