"""User-facing errors: one line that says what is wrong, where, and how to fix it (exit 2)."""

from __future__ import annotations


class UserError(Exception):
    """An error caused by input (spec, paths, flags); the CLI prints it as one line, exit code 2."""

    def __init__(self, message: str, where: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.where = where
        self.key = key
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.where, self.key) if p]
        return ": ".join([*parts, self.message])


class SpecError(UserError):
    """A sweep file that does not validate."""
