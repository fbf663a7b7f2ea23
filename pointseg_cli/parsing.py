"""Parsers for the comma-separated values users type on the command line (``--spacing 2,0.5,0.5``).

One source for every ``a,b,c`` option, so that each reports a bad value the same way: the option,
what was expected (with an example) and what was given. ``None`` or an empty string means "not
given" and returns ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pointseg_cli.errors import ConfigError, PointsegError


def split_list(text: str, *, what: str, sizes: bool = False, error: type[PointsegError] = ConfigError) -> list[str]:
    """Items of a comma-separated list, stripped; an empty item is an error.

    ``sizes`` also accepts ``x`` as the separator (``256x256``).
    """
    if sizes:
        text = text.lower().replace("x", ",")
    items = [s.strip() for s in text.split(",")]
    if any(not s for s in items):
        raise error(f"{what} has an empty item in {text!r}; expected values separated by commas")
    return items


def parse_floats(text: str | None, *, what: str, example: str = "2,0.5,0.5") -> tuple[float, ...] | None:
    """``"2,0.5,0.5"`` → ``(2.0, 0.5, 0.5)``."""
    if not text:
        return None
    try:
        values = tuple(float(v) for v in split_list(text, what=what))
    except ValueError:
        raise ConfigError(f"{what} must be numbers separated by commas (e.g. {example}); got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{what} must be finite numbers (no nan or inf; e.g. {example}); got {text!r}")
    return values


def parse_ints(
    text: str | None,
    *,
    what: str,
    example: str = "0,10,20",
    minimum: int | None = None,
    lengths: Sequence[int] | None = None,
    sizes: bool = False,
) -> tuple[int, ...] | None:
    """``"0,10,20"`` → ``(0, 10, 20)``.

    Parameters
    ----------
    minimum : smallest value allowed.
    lengths : numbers of values allowed (e.g. ``(2, 3)`` for a 2-D or 3-D size).
    sizes : also accept ``x`` as the separator (``128x128``).
    """
    if not text:
        return None
    try:
        values = tuple(int(v) for v in split_list(text, what=what, sizes=sizes))
    except ValueError:
        raise ConfigError(f"{what} must be integers separated by commas (e.g. {example}); got {text!r}") from None
    if lengths is not None and len(values) not in lengths:
        allowed = " or ".join(map(str, lengths))
        raise ConfigError(f"{what} must have {allowed} values (e.g. {example}); got {len(values)} in {text!r}")
    if minimum is not None and any(v < minimum for v in values):
        raise ConfigError(f"{what} values must be >= {minimum}; got {text!r}")
    return values


def parse_names(
    text: str | Sequence[str] | None, *, what: str, error: type[PointsegError] = ConfigError
) -> tuple[str, ...] | None:
    """``"a, b,c"`` (or a sequence) → ``("a", "b", "c")``; empty or repeated names are an error."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(str(s).strip() for s in items)
    if not names or all(not n for n in names):
        return None
    if any(not n for n in names):
        raise error(f"{what} has an empty name in {text!r}; expected names separated by commas")
    if len(set(names)) != len(names):
        raise error(f"{what} repeats a name: {text!r}")
    return names


def parse_mapping(
    text: str | None, *, what: str, example: str = "old=new,cell=nucleus", error: type[PointsegError] = ConfigError
) -> dict[str, str]:
    """``"a=b, c=d"`` → ``{"a": "b", "c": "d"}``; a key given twice is an error."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for item in split_list(text, what=what, error=error):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key or not value:
            raise error(f"{what} must be pairs like {example}; got {item!r} in {text!r}")
        if key in out:
            raise error(f"{what} maps {key!r} twice in {text!r}")
        out[key] = value
    return out
