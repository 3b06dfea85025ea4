"""Find the JSON object inside free model text.

Model answers often wrap the JSON in prose or a code fence. We scan for balanced
``{...}`` candidates (respecting strings) and return the first that parses to a dict.
Everything is bounded: input length, number of candidates, and nesting depth, so a
hostile answer costs at most a few milliseconds.
"""

from __future__ import annotations

import json
from typing import Any

MAX_TEXT_CHARS = 20_000
MAX_CANDIDATES = 20
MAX_DEPTH = 20


class AnswerTooLong(ValueError):
    """The answer is longer than any legitimate answer could be."""


def _balanced_end(text: str, start: int) -> int | None:
    """Index one past the ``}`` closing the ``{`` at ``start``, or None."""
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
            if depth > MAX_DEPTH:
                return None
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
            if depth < 0:
                return None
    return None


def find_json_object(text: str, max_chars: int = MAX_TEXT_CHARS) -> dict[str, Any] | None:
    """Return the first JSON object (a dict) found in ``text``, or None.

    Raises AnswerTooLong when ``text`` exceeds ``max_chars`` so callers can give the
    format penalty without scanning megabytes.
    """
    if len(text) > max_chars:
        raise AnswerTooLong(f"answer has {len(text)} characters, the limit is {max_chars}")
    tried = 0
    pos = text.find("{")
    while pos != -1 and tried < MAX_CANDIDATES:
        tried += 1
        end = _balanced_end(text, pos)
        if end is not None:
            try:
                value = json.loads(text[pos:end])
            except (ValueError, RecursionError):
                value = None
            if isinstance(value, dict):
                return value
        pos = text.find("{", pos + 1)
    return None
