"""CSV cells that a spreadsheet cannot run as formulas (OWASP's CSV injection rule), for every export.

Text that starts with =, +, -, @, a tab or a carriage return is read by Excel, LibreOffice and Google Sheets as a
formula (`=HYPERLINK(...)` leaks data, `+cmd|' /C calc'!A0` runs a program), so such a cell gets a leading single
quote and keeps the rest as it was. Every text cell is also written in double quotes, so a spreadsheet that splits
on semicolons (as Excel does in many locales) never starts a new cell, and a formula with it, inside one
(`x;=HYPERLINK(...)`). Only text is touched: the ids, token counts and amounts we write ourselves are numbers, not
strings, and stay plain numbers; amounts in the API's canonical form (usage/money.py).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from usage.money import canonical

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    if isinstance(value, Decimal):  # still a number (unquoted), written in the API's canonical form
        return Decimal(canonical(value))
    return value


class SafeCsvWriter:
    """csv.writer whose rows have every text cell neutralised; writerow returns what the file's write returned."""

    def __init__(self, out: Any) -> None:
        self._writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(value) for value in row])
