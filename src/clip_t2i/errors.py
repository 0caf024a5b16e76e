"""User-facing errors: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; the message says what to fix (one line, no traceback)."""

    exit_code: int = 2
