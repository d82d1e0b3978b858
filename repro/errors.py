"""Errors a user can act on. The CLI prints their message (no traceback) and exits with status 2."""


class ReproError(Exception):
    """Base class for errors caused by input the user controls (config, data, names)."""


class ConfigError(ReproError, ValueError):
    """An invalid run configuration, template, backbone or method name."""


class DataError(ReproError):
    """Missing or malformed benchmark data; the message names the file (and line, field where known)."""
