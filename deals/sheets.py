"""Quote items as a spreadsheet: export to .xlsx, import from .xlsx or CSV.

An import is all or nothing: every row is checked, every error is reported as row + column + reason, and
the items change only when no row is wrong. A row with an ``ID`` keeps that item (export → edit → import
leaves unchanged rows' ids alone). The .xlsx is read only in the sheet worker (``deals.sheet_worker``, a
sandboxed child process: a zip bomb or a broken file costs the child, never the server); CSV is plain text,
read here (UTF-8 with or without a BOM, else Shift_JIS as Excel writes it).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

from core import sandbox
from core.errors import N_, InvalidInput
from deals.quote_models import QuoteItem
from deals.quotes import MAX_ITEMS, MAX_QUANTITY, MAX_UNIT_PRICE, ItemInput

MAX_BYTES = 10 * 1024 * 1024
WORKER_TIMEOUT = 30.0
Cell = str | int | float | bool | None

# Column keys and the headings each may have (the export writes the first one).
HEADINGS: dict[str, tuple[str, ...]] = {
    "id": ("ID", "id"),
    "name": ("品名", "name", "商品名", "item"),
    "quantity": ("数量", "quantity", "qty"),
    "unit_price": ("単価（円）", "単価", "単価(円)", "unit price", "unit_price", "price"),
    "grade": ("ランク", "grade"),
    "notes": ("備考", "notes"),
}
REQUIRED = ("name", "quantity", "unit_price")
COLUMN_LABELS = {
    "id": "ID",
    "name": N_("Item name"),
    "quantity": N_("Quantity"),
    "unit_price": N_("Unit price (yen)"),
    "grade": N_("Grade"),
    "notes": N_("Notes"),
}
LIMITS = {"name": 200, "grade": 50, "notes": 500}

NAME_MISSING = N_("The item name is missing.")
TOO_LONG = N_("Longer than {limit} characters.")
NOT_WHOLE = N_("Not a whole number.")
OUT_OF_RANGE = N_("Must be from {low} to {high}.")
BAD_ID = N_("Not an item id of this quote.")


class SheetTooLarge(InvalidInput):
    code = "sheet_too_large"
    status = 413
    message = N_("The file is larger than 10 MB.")


class SheetUnreadable(InvalidInput):
    code = "sheet_unreadable"
    message = N_("This file could not be read. Upload an .xlsx file or a CSV file.")


class SheetHeadings(InvalidInput):
    code = "sheet_headings"
    message = N_("The first row must name the columns: 品名, 数量 and 単価 at least.")


class SheetTooLong(InvalidInput):
    code = "sheet_too_long"
    message = N_("The sheet has more than {limit} rows.")


@dataclass(frozen=True)
class RowError:
    row: int  # the sheet's own row number (the headings are row 1)
    column: str  # a key of HEADINGS
    letter: str  # the sheet's column letter (A, B, …)
    reason: str  # a msgid
    params: dict[str, int]


class SheetErrors(InvalidInput):
    """Some rows are wrong: nothing was imported. ``errors`` name each row, column and reason."""

    code = "sheet_errors"
    message = N_("Nothing was imported: {count} problems in the sheet.")

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(count=len(errors))
        self.errors = errors


def _letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _whole(value: Cell) -> int | None:
    """A cell as a whole number: 1200, 1200.0, "1,200", "１２００円"; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip().translate(str.maketrans("０１２３４５６７８９，－", "0123456789,-"))
        text = text.removesuffix("円").replace(",", "").strip()
        digits = text.removeprefix("-")
        if digits.isascii() and digits.isdigit() and len(digits) <= 15:
            return int(text)
    return None


def _text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())


def check_rows(rows: Sequence[tuple[int, Sequence[Cell]]], known_ids: set[int]) -> list[ItemInput]:
    """The items of a sheet's rows (the first is the headings), or :class:`SheetErrors` naming them all."""
    if not rows:
        raise SheetHeadings()
    _, heading_cells = rows[0]
    columns: dict[str, int] = {}
    for index, heading_cell in enumerate(heading_cells):
        heading = _text(heading_cell).lower()
        for key, names in HEADINGS.items():
            if heading in (n.lower() for n in names) and key not in columns:
                columns[key] = index
    if any(key not in columns for key in REQUIRED):
        raise SheetHeadings()
    data = [(number, cells) for number, cells in rows[1:] if any(_text(c) for c in cells)]
    if len(data) > MAX_ITEMS:
        raise SheetTooLong(limit=MAX_ITEMS)
    errors: list[RowError] = []
    items: list[ItemInput] = []
    seen_ids: set[int] = set()
    for number, cells in data:

        def cell(key: str, cells: Sequence[Cell] = cells) -> Cell:
            index = columns.get(key)
            return cells[index] if index is not None and index < len(cells) else None

        def fail(key: str, reason: str, number: int = number, **params: int) -> None:
            errors.append(RowError(number, key, _letter(columns[key]), reason, params))

        texts = {key: _text(cell(key)) for key in LIMITS}
        if not texts["name"]:
            fail("name", NAME_MISSING)
        for key, limit in LIMITS.items():
            if len(texts[key]) > limit:
                fail(key, TOO_LONG, limit=limit)
        numbers: dict[str, int] = {}
        for key, low, high in (("quantity", 1, MAX_QUANTITY), ("unit_price", 0, MAX_UNIT_PRICE)):
            value = _whole(cell(key))
            if value is None:
                fail(key, NOT_WHOLE)
            elif not low <= value <= high:
                fail(key, OUT_OF_RANGE, low=low, high=high)
            else:
                numbers[key] = value
        item_id: int | None = None
        if "id" in columns and _text(cell("id")):
            item_id = _whole(cell("id"))
            if item_id is None or item_id not in known_ids or item_id in seen_ids:
                fail("id", BAD_ID)
                item_id = None
            else:
                seen_ids.add(item_id)
        if len(numbers) == 2 and texts["name"]:
            items.append(
                ItemInput(
                    item_id,
                    texts["name"],
                    numbers["quantity"],
                    numbers["unit_price"],
                    texts["grade"],
                    texts["notes"],
                )
            )
    if errors:
        raise SheetErrors(errors)
    return items


def csv_rows(data: bytes) -> list[tuple[int, list[Cell]]]:
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise SheetUnreadable()
    if "\x00" in text:
        raise SheetUnreadable()
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[Cell]]] = []
    try:
        for number, row in enumerate(reader, start=1):
            rows.append((number, list(row[:20])))  # 10 MB at most: the whole file is fine to hold
    except csv.Error as exc:
        raise SheetUnreadable() from exc
    return rows


_slots: asyncio.Semaphore | None = None


async def xlsx_rows(data: bytes) -> list[tuple[int, list[Cell]]]:
    """The first sheet's rows, read in the sheet worker (one at a time per server process)."""
    global _slots
    if _slots is None:
        _slots = asyncio.Semaphore(1)
    async with _slots:
        try:
            done = await sandbox.run("deals.sheet_worker", [], data, WORKER_TIMEOUT)
        except sandbox.TimedOut as exc:
            raise SheetUnreadable() from exc
    if done.status != 0:
        raise SheetUnreadable()
    try:
        answer = await asyncio.to_thread(json.loads, done.stdout)  # up to ~20 MB of rows: off the loop
        return [(int(number), list(cells)) for number, cells in answer["rows"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SheetUnreadable() from exc


def is_xlsx(data: bytes, name: str) -> bool:
    return data[:4] == b"PK\x03\x04" or name.lower().endswith((".xlsx", ".xlsm"))


async def read(data: bytes, name: str, known_ids: set[int]) -> list[ItemInput]:
    if len(data) > MAX_BYTES:
        raise SheetTooLarge()
    if is_xlsx(data, name) and data[:4] != b"PK\x03\x04":
        raise SheetUnreadable()  # named .xlsx but not a zip: no need to start the worker
    rows = await xlsx_rows(data) if is_xlsx(data, name) else csv_rows(data)
    return check_rows(rows, known_ids)


def export(items: Sequence[QuoteItem], title: str) -> bytes:
    """The items as .xlsx with their ids: edit the other columns and import it back."""
    from openpyxl import Workbook  # the server only writes sheets; reading is the worker's

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "見積明細"
    sheet.append([names[0] for names in HEADINGS.values()])
    for item in items:
        sheet.append([item.id, item.name, item.quantity, item.unit_price, item.grade, item.notes])
    for letter, width in zip("ABCDEF", (8, 40, 8, 14, 10, 40), strict=True):
        sheet.column_dimensions[letter].width = width
    book.properties.title = title[:200]
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
