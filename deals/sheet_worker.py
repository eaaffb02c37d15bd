"""The sheet worker: reads one .xlsx from standard input under :func:`core.sandbox.apply_limits` and writes
its first sheet's non-empty rows as JSON (``{"rows": [[row number, [cells…]], …]}``), at most the headings
and :data:`ROW_CAP` more, 20 columns each. Exit 2: not an .xlsx, or its contents would unpack to more than
:data:`UNPACKED_CAP` (a zip bomb is refused before it is inflated); anything worse is the limits' to stop.

Run by deals.sheets (``python -m deals.sheet_worker``); never imported by the server.
"""

from __future__ import annotations

import datetime
import io
import json
import sys
import zipfile

from core import sandbox

MEMORY_MB = 512
CPU_SECONDS = 20
MAX_BYTES = 10 * 1024 * 1024
UNPACKED_CAP = 100 * 1024 * 1024
ROW_CAP = 1001  # one more than an import takes, so that "too many rows" can be told
COLUMNS = 20
# Longer than any field takes (deals.sheets.LIMITS), so a too-long cell is still reported as too long; but a
# 40 KB sheet whose cells all name one long shared string no longer answers with tens of MB of JSON.
CELL_CAP = 1000


def _cell(value: object) -> object:
    if isinstance(value, str):
        return value[: CELL_CAP + 1]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def rows(data: bytes) -> list[tuple[int, list[object]]]:
    from openpyxl import load_workbook

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(info.file_size for info in archive.infolist()) > UNPACKED_CAP:
            raise ValueError("unpacks too large")
    book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    sheet = book.worksheets[0]
    found: list[tuple[int, list[object]]] = []
    for number, values in enumerate(sheet.iter_rows(max_col=COLUMNS, values_only=True), start=1):
        cells = [_cell(v) for v in values]
        if any(c not in (None, "") for c in cells):
            found.append((number, cells))
            if len(found) > ROW_CAP:
                break
    return found


def main() -> int:
    sandbox.apply_limits(MEMORY_MB, CPU_SECONDS)
    data = sys.stdin.buffer.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        return 2
    try:
        found = rows(data)
    except Exception:  # noqa: BLE001 - any failure to read is "not a readable .xlsx"
        return 2
    sys.stdout.write(json.dumps({"rows": found}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
