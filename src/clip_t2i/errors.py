"""User-facing errors: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user; the message says what to fix (one line, no traceback).

    A ``ValueError`` subclass, so API callers that catch ``ValueError`` for bad arguments keep working.
    """

    exit_code: int = 2


def one_line(message: str) -> str:
    """``message`` folded onto one line (newlines and runs of spaces become single spaces)."""
    return " ".join(str(message).split())
