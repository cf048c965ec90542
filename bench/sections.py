"""The hand-kept sections of BENCHMARKS.md.

bench.run writes the main part of the file; each other benchmark (reports, probes, refresh samples,
history disk) owns one section, "## <title> ...", that bench.run keeps as it is when it rewrites the
rest. The history disk's section stays the file's last; the others go before it.
"""

from __future__ import annotations

from pathlib import Path

LAST = "## A year of history"


def kept(path: Path, section: str) -> str:
    """``section`` of an existing file (from its title to the next "## " title), or "" if it has none."""
    if not path.exists():
        return ""
    text = path.read_text()
    if section not in text:
        return ""
    start = text.index(section)
    following = text.find("\n## ", start + len(section))
    return "\n" + (text[start : following + 1] if following >= 0 else text[start:]).rstrip("\n") + "\n"


def write(path: Path, section: str, body: str) -> None:
    """Replaces ``section`` of the file with ``body``, or adds it before the last section (else at the end)."""
    text = path.read_text() if path.exists() else ""
    body = body.rstrip("\n") + "\n"
    if section in text:
        start = text.index(section)
        following = text.find("\n## ", start + len(section))
        rest = text[following + 1 :] if following >= 0 else ""
        text = text[:start] + body + ("\n" + rest if rest else "")
    elif section != LAST and LAST in text:
        at = text.index(LAST)
        text = text[:at] + body + "\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + body if text.strip() else body
    path.write_text(text)
