from __future__ import annotations


class GzError(Exception):
    """A user error: the message says what is wrong and what to do; the CLI shows it as one line."""


class ConfigError(GzError, ValueError):
    """A parameter is unknown or has a bad value; the message names it and says what is allowed."""

    # One wording for the same mistake, whichever command or config field it is made in.
    @classmethod
    def not_a_choice(cls, name: str, choices, got) -> ConfigError:
        return cls(f"parameter {name!r} must be one of {', '.join(map(str, choices))}; got {got!r}")

    @classmethod
    def too_small(cls, name: str, bound, got, *, strictly: bool = False, unset: str | None = None) -> ConfigError:
        least = f"more than {bound}" if strictly else f"at least {bound}"
        return cls(f"parameter {name!r} must be {least}{f' (or {unset})' if unset else ''}, got {got}")


class NoSpaceError(GzError):
    """A disk filled: the message names the folder and the bytes that were needed."""
