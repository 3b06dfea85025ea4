"""The fenced code blocks of README.md and docs/*.md, with their ``<!-- doc-test: ... -->`` markers."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def doc_blocks(languages: str) -> list[tuple[str, str, str]]:
    """``(file:line, marker, code)`` of every block fenced as one of ``languages`` (a regex
    alternation, e.g. ``"python"`` or ``"bash|sh"``); the marker is the text of a
    ``<!-- doc-test: MARKER -->`` comment on the line before the fence, or ''."""
    fence = re.compile(
        rf"(?:^<!-- doc-test: (?P<marker>[^>]*?) -->\n)?^```(?:{languages})\n(?P<code>.*?)^```", re.M | re.S
    )
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for m in fence.finditer(text):
            line = text.count("\n", 0, m.start("code"))
            out.append(
                (f"{path.relative_to(ROOT)}:{line}", (m.group("marker") or "").strip(), m.group("code"))
            )
    return out
