"""One exception type the CLI turns into a single line on stderr (and a JSON log line) and an exit code."""


class PyrunError(Exception):
    """An error the user should see as one line, never as a traceback."""

    exit_code = 1


class ConfigError(PyrunError):
    """config.json is missing, malformed, invalid, or asks for something this runtime refuses."""


class NotFound(PyrunError):
    """The container does not exist (clients match on the words "does not exist")."""
