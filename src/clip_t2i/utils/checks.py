"""Argument checks shared by the API and the CLI: each failure is a :class:`UserError` naming the flag.

Caps (image size, seeds per call, steps, batch) keep a typo from allocating terabytes or starting a
100,000-image job. Their defaults are in :data:`LIMITS`; each is overridable with an environment variable
(``CLIP_T2I_MAX_IMAGE_SIZE`` etc.), read when the check runs, so a user who means it can raise it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from clip_t2i.errors import UserError


@dataclass(frozen=True)
class Limit:
    """A cap: ``default`` unless the environment variable ``env`` holds a positive integer."""

    env: str
    default: int
    what: str

    @property
    def value(self) -> int:
        raw = os.environ.get(self.env)
        if raw is None or raw == "":
            return self.default
        try:
            v = int(raw)
        except ValueError:
            raise UserError(f"${self.env} must be a positive integer, got {raw!r}") from None
        if v < 1:
            raise UserError(f"${self.env} must be a positive integer, got {raw!r}")
        return v


LIMITS: dict[str, Limit] = {
    "image_size": Limit("CLIP_T2I_MAX_IMAGE_SIZE", 1024, "image side in pixels"),
    "seeds": Limit("CLIP_T2I_MAX_SEEDS", 1000, "images (prompts x seeds) per call"),
    "steps": Limit("CLIP_T2I_MAX_STEPS", 1_000_000, "optimisation / training steps"),
    "batch": Limit("CLIP_T2I_MAX_BATCH", 8192, "batch size"),
}


def check_cap(value: int, limit: str, flag: str) -> int:
    """``value`` if it is within the cap ``LIMITS[limit]``; else a one-line error naming the override."""
    cap = LIMITS[limit]
    if value > cap.value:
        raise UserError(f"{flag} {value} is above the limit of {cap.value} {cap.what}; set ${cap.env} to raise it")
    return value


def check_int(value: Any, flag: str, *, minimum: int = 1, cap: str | None = None) -> int:
    """An integer ``>= minimum`` (and within ``LIMITS[cap]`` if given)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{flag} must be an integer, got {value!r}")
    if value < minimum:
        raise UserError(f"{flag} must be >= {minimum}, got {value}")
    if cap is not None:
        check_cap(value, cap, flag)
    return value


def check_float(
    value: Any,
    flag: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    maximum: float | None = None,
    inclusive_max: bool = True,
) -> float:
    """A finite number (NaN and ±inf are refused), optionally ``> 0`` / ``>= 0`` / ``<= maximum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{flag} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise UserError(f"{flag} must be a finite number, got {value}")
    if positive and value <= 0:
        raise UserError(f"{flag} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise UserError(f"{flag} must be >= 0, got {value}")
    if maximum is not None and (value > maximum if inclusive_max else value >= maximum):
        raise UserError(f"{flag} must be {'<=' if inclusive_max else '<'} {maximum}, got {value}")
    return float(value)


def check_choice(value: Any, choices: tuple[str, ...] | list[str], flag: str) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise UserError(f"{flag} must be one of {', '.join(choices)}; got {value!r}")
    return value
