"""Find the JSON object inside free model text.

Model answers often wrap the JSON in prose or a code fence. We scan for balanced
``{...}`` candidates (respecting strings) and return the first that parses to a dict.
Everything is bounded: input length, number of candidates, and nesting depth, so a
hostile answer costs at most a few milliseconds. ``answer_text`` turns any model output
(str, bytes, anything else) into text or None without touching more than a bounded prefix.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sftvsrl.envs.revision import MAX_ECHOED_ANSWER_CHARS

MAX_TEXT_CHARS = 20_000
MAX_CANDIDATES = 20
MAX_DEPTH = 20
_DECODER = json.JSONDecoder()


class AnswerTooLong(ValueError):
    """The answer is longer than any legitimate answer could be."""


def answer_text(answer: object, max_chars: int = MAX_TEXT_CHARS) -> str | None:
    """Model output as text: a str as it is, bytes decoded as UTF-8 (invalid bytes become
    U+FFFD), anything else None.

    Bytes are decoded from a bounded prefix only: a UTF-8 character takes at most 4 bytes,
    so more than ``4 * max_chars + 4`` bytes always decode to an answer over ``max_chars``
    characters, and the prefix decodes to one too. Costs O(max_chars) for any input.
    """
    if isinstance(answer, str):
        return answer
    if isinstance(answer, (bytes, bytearray, memoryview)):
        raw = bytes(answer[: 4 * max_chars + 4])
        return raw.decode("utf-8", errors="replace")
    return None


_SPECIAL = re.compile(r'[][{}"\\]')


def _balanced_end(text: str, start: int) -> int | None:
    """Index one past the ``}`` closing the ``{`` at ``start``, or None.

    Jumps between the characters that matter (brackets, quotes, backslashes) with a regex,
    so a 20,000-character candidate costs a fraction of a millisecond.
    """
    depth = 0
    in_string = False
    skip = -1  # the character after a backslash inside a string
    for match in _SPECIAL.finditer(text, start):
        i = match.start()
        if i == skip:
            continue
        ch = text[i]
        if in_string:
            if ch == "\\":
                skip = i + 1
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


def echo_clip(answer: str, limit: int = MAX_ECHOED_ANSWER_CHARS) -> str:
    """What to store for echoing an answer into the next prompt, from a bounded prefix.

    Up to ``4 * limit`` characters the answer is kept whole (the revision prompt strips and
    clips it itself). A longer answer keeps its first ``limit - 60`` characters and a note of
    how many were cut, which the prompt then echoes unchanged: storing or charset-mapping a
    10 MB answer costs as little as a short one.
    """
    if len(answer) <= 4 * limit:
        return answer
    head = limit - 60
    return answer[:head] + f"... [{len(answer) - head} more characters cut]"


def find_json_object(text: str, max_chars: int = MAX_TEXT_CHARS) -> dict[str, Any] | None:
    """Return the first JSON object (a dict) found in ``text``, or None.

    Raises AnswerTooLong when ``text`` exceeds ``max_chars`` so callers can give the
    format penalty without scanning megabytes.
    """
    if len(text) > max_chars:
        raise AnswerTooLong(f"answer has {len(text)} characters, the limit is {max_chars}")
    pos = text.find("{")
    if pos == -1:
        return None
    # Fast path: a JSON object starts at the first "{". Its first brace is closed by its
    # last, so the scan below would pick the same candidate; counting every bracket in it
    # bounds its depth as the scan does. Prose after the object does not matter.
    try:
        value, stop = _DECODER.raw_decode(text, pos)
    except (ValueError, RecursionError):
        value = None
    if type(value) is dict and text.count("{", pos, stop) + text.count("[", pos, stop) <= MAX_DEPTH:
        return value
    tried = 0
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
