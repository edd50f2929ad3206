"""CSV that is safe to open in a spreadsheet: the one way Chartdesk writes CSV.

A cell that starts with `=`, `+`, `-`, `@`, a tab, a carriage return or a line feed is
read as a formula by Excel, LibreOffice and Google Sheets (CSV / formula injection, OWASP).
Much of what Chartdesk writes comes from outside (a username typed at the sign-in page, a
browser's User-Agent, a payer name in an EHR message), so every text cell of every CSV goes
through `safe_cell`, which puts a `'` in front of such a value: the spreadsheet shows the
text instead of running it. Numbers are written as they are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


class _Writable(Protocol):
    def write(self, s: str, /) -> Any: ...


def safe_cell(value: object) -> object:
    """A cell a spreadsheet shows as text: None as empty, a formula-like text after a `'`."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class SafeWriter:
    """`csv.writer` whose every row goes through `safe_cell`."""

    def __init__(self, out: _Writable, **options: Any) -> None:
        # Rows end in CRLF (RFC 4180): csv quotes a cell holding any character of the line
        # terminator, so a CR or LF inside a cell (a "\r+1" member id) stays in its cell.
        options["lineterminator"] = "\r\n"
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[object]) -> None:
        """Write one row, every cell made safe."""
        self._writer.writerow([safe_cell(cell) for cell in row])
