"""User-facing errors: one line that says what is wrong, where, and how to fix it (exit 2)."""

from __future__ import annotations

import re

#: characters that would break the one-line promise or the terminal (escaped in :meth:`UserError.line`)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: the longest line printed (a value quoted from a huge input is cut)
MAX_LINE = 2000


class UserError(Exception):
    """An error caused by input (spec, paths, flags); the CLI prints it as one line, exit code 2."""

    def __init__(self, message: str, where: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.where = where
        self.key = key
        super().__init__(self.line())

    def line(self) -> str:
        """``where: key: message`` on one line (control characters escaped, length bounded)."""
        parts = [p for p in (self.where, self.key) if p]
        text = ": ".join([*parts, self.message])
        text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
        return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


class SpecError(UserError):
    """A sweep file that does not validate."""


def error_line(err: BaseException) -> str:
    """The last line of an error (Ray wraps remote errors with their traceback)."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        err = cause
    text = [line for line in str(err).strip().splitlines() if line.strip()]
    line = text[-1].strip() if text else ""
    return f"{type(err).__name__}: {line}"[:2000] if line else type(err).__name__
