"""JSON read in pieces: a state file parsed from its open file a chunk at a time, never held whole.

A window collector's state file is tens of MB of JSON (the heatmap's 28 days at the month scale: 36 MB).
``json.loads`` of it holds the file's bytes, the same decoded as text, and what it parses, at once: three
times the file. :class:`Pieces` reads ``CHUNK`` bytes at a time instead. Each value is parsed whole by
the C parser (``json.JSONDecoder.raw_decode``) when it fits in what was read; an object that does not is
parsed a member at a time, each member the same way; any other value (a long string: a day's encoded
arrays; a list: a family's column) is read on until it fits, then parsed whole. What is held at once is
then about a chunk, or the largest such value, and the values parsed so far: ``largest`` says how many
characters of the file were held at once, the most (what tests check).

The result is what ``json.loads`` gives for the same file (NaN and infinities included); a file that
``json.loads`` refuses raises ``ValueError`` (``json.JSONDecodeError``) here too.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Collection
from typing import IO, Any

CHUNK = 4 << 20  # a file up to this size is parsed at once, as json.loads would (as fast)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_SKIPPED = object()
_NUMBER = frozenset("0123456789+-.eE")


class Pieces:
    """A JSON document read from ``handle`` (bytes, UTF-8) a piece at a time."""

    def __init__(self, handle: IO[bytes], chunk: int = CHUNK) -> None:
        self.handle = handle
        self.chunk = chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogatepass")  # as json.loads decodes bytes
        self.text = ""
        self.at = 0
        self.ended = False
        self.started = False
        self.largest = 0  # the most characters of the file held at once

    # -- the text read so far ------------------------------------------------------------------
    def _more(self) -> None:
        """Reads on: at least a chunk, and as much again as is held (a long value: doubling, not a chunk more
        at each try). What was parsed is dropped first."""
        held = len(self.text) - self.at
        data = self.handle.read(max(self.chunk, held))
        added = self.decoder.decode(data, final=not data)
        if not self.started and added:
            self.started = True
            added = added.removeprefix("\ufeff")  # (a byte-order mark, as json.loads allows on bytes)
        self.text = self.text[self.at :] + added
        self.at = 0
        self.ended = not data
        self.largest = max(self.largest, len(self.text))

    def _next(self) -> str:
        """The next character that is not whitespace ('' at the end), not consumed."""
        while True:
            self.at = _WHITESPACE.match(self.text, self.at).end()  # type: ignore[union-attr]  # (always matches)
            if self.at < len(self.text):
                return self.text[self.at]
            if self.ended:
                return ""
            self._more()

    def _expect(self, character: str) -> None:
        if self._next() != character:
            raise json.JSONDecodeError(f"Expecting {character!r}", self.text, self.at)
        self.at += 1

    # -- values --------------------------------------------------------------------------------
    def value(self, keep: bool = True) -> Any:
        """The next value (``keep=False``: parsed and dropped, an object a member at a time)."""
        first = self._next()
        if first == "":
            raise json.JSONDecodeError("Expecting value", self.text, self.at)
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.at)
            except json.JSONDecodeError:
                if self.ended:
                    raise
                if first == "{":
                    return self.members(keep)  # larger than what was read: a member at a time
                if first == "[" and self._nested():
                    return self.elements(keep)  # a list of lists or objects (columns): an element at a time
            else:
                # A number that ends where the text read ends, or before a character a number may have, may go
                # on (cut short: "12" of "123", "0" of "0.5"): read on. (Followed by one, it is invalid anyway.)
                if self.ended or (end < len(self.text) and self.text[end] not in _NUMBER):
                    self.at = end
                    return value if keep else _SKIPPED
            self._more()

    def _nested(self) -> bool:
        """Whether the list that comes next holds lists or objects (its first element is one)."""
        while True:
            after = _WHITESPACE.match(self.text, self.at + 1).end()  # type: ignore[union-attr]  # (always matches)
            if after < len(self.text):
                return self.text[after] in ("[", "{")
            if self.ended:
                return False
            self._more()  # (keeps the text from the list's start)

    def elements(self, keep: bool = True) -> list[Any]:
        """The list that comes next, parsed an element at a time."""
        found: list[Any] = []
        if self._opened("[", "]"):
            return found
        while True:
            item = self.value(keep)
            if keep:
                found.append(item)
            if self._closed("]"):
                return found

    def members(
        self, keep: bool = True, skip: Collection[str] = (), stop: Callable[[str, list[str]], bool] | None = None
    ) -> dict[str, Any]:
        """The object that comes next, parsed a member at a time. The values of the keys in ``skip`` are
        parsed and dropped. ``stop(key, keys before it)`` true: ends before that key's value (it and what
        follows left unread, ``stopped`` set), returning the members found before it."""
        found: dict[str, Any] = {}
        keys: list[str] = []
        if self._opened("{", "}"):
            return found
        while True:
            if self._next() != '"':
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", self.text, self.at)
            key = self.value()
            self._expect(":")
            if stop is not None and stop(key, keys):
                self.stopped = True
                return found
            item = self.value(keep and key not in skip)
            keys.append(key)
            if keep and key not in skip:
                found[key] = item
            if self._closed("}"):
                return found

    def _opened(self, opening: str, closing: str) -> bool:
        """Consumes the opening bracket, and the closing one when the container is empty (then True)."""
        self._expect(opening)
        if self._next() == closing:
            self.at += 1
            return True
        return False

    def _closed(self, closing: str) -> bool:
        """After an item: consumes the comma (False: more items follow) or the closing bracket (True)."""
        following = self._next()
        self.at += 1
        if following == closing:
            return True
        if following != ",":
            raise json.JSONDecodeError("Expecting ',' delimiter", self.text, self.at - 1)
        return False

    def end(self) -> None:
        """Only whitespace may follow the document (as json.loads wants)."""
        if self._next() != "":
            raise json.JSONDecodeError("Extra data", self.text, self.at)

    stopped = False


def load(
    handle: IO[bytes],
    skip: Collection[str] = (),
    stop: Callable[[str, list[str]], bool] | None = None,
    chunk: int | None = None,
) -> tuple[Any, Pieces]:
    """The JSON document of ``handle`` read in pieces, and the reader (its ``largest``, whether it ``stopped``).
    An object is read a member at a time; ``skip`` and ``stop`` apply to its top-level keys (Pieces.members)."""
    pieces = Pieces(handle, CHUNK if chunk is None else chunk)
    if pieces._next() != "{":
        document = pieces.value()
    else:
        document = pieces.members(skip=skip, stop=stop)
        if pieces.stopped:
            return document, pieces
    pieces.end()
    return document, pieces
