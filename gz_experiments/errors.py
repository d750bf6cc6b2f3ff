class GzError(Exception):
    """A user error: the message says what is wrong and what to do; the CLI shows it as one line."""
class ConfigError(GzError, ValueError):
    """A parameter is unknown or has a bad value; the message names it and says what is allowed."""


class NoSpaceError(GzError):
    """A disk filled: the message names the folder and the bytes that were needed."""
