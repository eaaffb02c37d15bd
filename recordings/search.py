"""Finding meetings by what was written: Japanese substring search over the memo and 商談先情報.

Japanese has no spaces and the words people look for are often two characters (見積, 契約), which SQLite's
``trigram`` tokenizer and PostgreSQL's ``pg_trgm`` cannot find through their indexes (../shared/notes/
japanese-search.md). So every searchable field is stored as its **overlapping bigrams** (「お見積」 → 「お見
見積」), in ``meeting_search.grams``, and a query of two or more characters becomes the phrase of its own
bigrams: a row contains the query exactly when its grams contain that phrase (consecutive bigrams overlap by
one character, so a phrase cannot match across two fields, which are kept apart by a separator token).

- **SQLite**: an FTS5 table over ``meeting_search`` (external content, ``ascii`` tokenizer, which keeps every
  non-ASCII character inside a token) answers ``MATCH '"見積 積も"'`` from its index.
- **PostgreSQL**: a GIN index on ``string_to_array(grams, ' ')`` finds the rows holding every bigram
  (``@>``); ``strpos`` on the grams then keeps those where they are consecutive (the same phrase test).
- **One character** has no bigram: it is looked for by scanning the grams (``instr``/``strpos``).

Text is compared after NFKC and case folding (ＡＢＣ, abc and ABC are the same; half-width ｶﾅ is カナ); ASCII
punctuation and spaces are mapped to private-use characters so that no tokenizer splits a bigram. Several
words separated by spaces must all be found (AND).

The index is written only through :func:`index_records` (and migration 0007, for older records), in the same
transaction as the record's change; on SQLite a trigger removes a deleted row's entry (cascades included).
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    Table,
    Text,
    bindparam,
    column,
    delete,
    exists,
    func,
    insert,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from recordings.models import MeetingSearch

MAX_TERMS = 5
MAX_TERM_LENGTH = 50
SEPARATOR = "\U000f0000"  # a token of its own between fields: never part of a query's bigrams
# ASCII characters that are not letters or digits would split tokens (and are FTS5 syntax): private use.
_SAFE = {chr(c): chr(0xE000 + c) for c in range(128) if not chr(c).isalnum()}
_UNSAFE = re.compile("[" + re.escape("".join(_SAFE)) + "]")
_SPACE = array("I", [ord(" ")])
assert _SPACE.itemsize == 4, "code points are handled as 32-bit array items"
FTS = table("meeting_search_fts", column("rowid", Integer))
_SEARCH = cast(Table, MeetingSearch.__table__)


def normalise(value: str) -> str:
    """The form text is compared in: NFKC, case-folded, ASCII non-alphanumerics made private-use."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    for unsafe in set(_UNSAFE.findall(folded)):  # a few distinct ones (line breaks, spaces): replace each
        folded = folded.replace(unsafe, _SAFE[unsafe])
    return folded


def _field_grams(value: str) -> str:
    """``value``'s overlapping bigrams, space-separated. Built as 32-bit code points interleaved with spaces
    by slice assignment (``" ".join`` of 400 two-character strings costs five times more: indexing 100,000
    memos is part of the bench)."""
    folded = normalise(value)
    pairs = len(folded) - 1
    if pairs < 1:
        return folded  # a one-character field is its own token (found by the one-character scan)
    points = memoryview(array("I", folded.encode("utf-32-le")))
    out = memoryview(array("I", bytes(12 * pairs)))
    out[0::3] = points[:-1]
    out[1::3] = points[1:]
    out[2::3] = memoryview(_SPACE * pairs)
    return out[:-1].tobytes().decode("utf-32-le")


def grams_for(
    *,
    memo: str = "",
    guest_name: str = "",
    guest_reading: str = "",
    guest_company: str = "",
    guest_phone: str = "",
    notes: str = "",
    tags: Iterable[str] = (),
) -> str:
    """The grams stored for a record: each non-empty field's bigrams, fields apart by :data:`SEPARATOR`.

    A phone number is also indexed as digits only, so 09012345678 finds 090-1234-5678."""
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", guest_phone) if ch.isdigit())
    fields = [memo, guest_name, guest_reading, guest_company, guest_phone, digits, notes, *tags]
    return f" {SEPARATOR} ".join(grams for value in fields if value and (grams := _field_grams(value)))


@dataclass(frozen=True)
class Term:
    """One word of a query, normalised: found by the index when it has two characters or more."""

    text: str

    @property
    def grams(self) -> list[str]:
        return [self.text[i : i + 2] for i in range(len(self.text) - 1)]

    @property
    def phrase(self) -> str:
        return " ".join(self.grams)

    @property
    def indexed(self) -> bool:
        return len(self.text) >= 2


def parse(query: str) -> list[Term]:
    """The words of a search box's text (at most 5, each cut at 50 characters); [] for nothing to find."""
    words = unicodedata.normalize("NFKC", query).split()[:MAX_TERMS]
    return [Term(normalise(word[:MAX_TERM_LENGTH])) for word in words]


def _fts_query(terms: Sequence[Term]) -> str:
    # Each term a phrase of its bigrams; the tokens never contain a double quote (made private-use).
    return " AND ".join(f'"{term.phrase}"' for term in terms if term.indexed)


def fts_match(terms: Sequence[Term]) -> ColumnElement[bool]:
    """SQLite: the condition on :data:`FTS` for the indexed terms (select FTS.c.rowid where this)."""
    return literal_column("meeting_search_fts").op("MATCH", return_type=Boolean)(
        bindparam("fts_query", _fts_query(terms), type_=Text)
    )


def record_ids(dialect: str, terms: Sequence[Term]) -> Select[Any]:
    """The ids of the records containing every term: a subquery for ``MeetingRecord.id.in_(…)``."""
    indexed = [term for term in terms if term.indexed]
    scanned = [term for term in terms if not term.indexed]
    grams = MeetingSearch.grams
    if dialect == "sqlite":
        found: Select[Any] = select(FTS.c.rowid).where(fts_match(indexed))
        if not scanned:
            return found
        scan = select(MeetingSearch.record_id).where(*(func.instr(grams, term.text) > 0 for term in scanned))
        return scan.where(MeetingSearch.record_id.in_(found)) if indexed else scan
    return select(MeetingSearch.record_id).where(*_postgres_conditions(terms))


def _postgres_conditions(terms: Sequence[Term]) -> list[ColumnElement[bool]]:
    """PostgreSQL: the row's grams hold every bigram (the GIN index answers this) and the phrases."""
    grams = MeetingSearch.grams
    indexed = [term for term in terms if term.indexed]
    # The phrase test first: where the planner tests rows one by one (newest first, for a page), strpos
    # over the row's text is a few microseconds, while string_to_array builds a 400-element array.
    conditions = [func.strpos(grams, term.phrase if term.indexed else term.text) > 0 for term in terms]
    if indexed:
        wanted = sorted({gram for term in indexed for gram in term.grams})
        conditions.append(
            func.string_to_array(grams, " ").op("@>")(bindparam("grams_wanted", wanted, type_=ARRAY(TEXT)))
        )
    return conditions


def matches(dialect: str, terms: Sequence[Term], record_id: Any) -> ColumnElement[bool]:
    """The condition "record ``record_id`` contains every term", for a query over meeting records.

    On PostgreSQL an ``EXISTS`` on the record's own search row, so the planner may walk the records newest
    first and test each (a common word: the first page after 50 rows) or start from the GIN index (a rare
    one); ``IN (…)`` would make it collect every match first."""
    if dialect == "sqlite":
        return record_id.in_(record_ids(dialect, terms))  # type: ignore[no-any-return]
    return exists().where(MeetingSearch.record_id == record_id, *_postgres_conditions(terms))


def plain_scan(dialect: str, terms: Sequence[Term]) -> Select[Any]:
    """The same answer without the index (every row's grams read): the bench's and the tests' baseline."""
    position = func.instr if dialect == "sqlite" else func.strpos
    return select(MeetingSearch.record_id).where(
        *(position(MeetingSearch.grams, term.phrase if term.indexed else term.text) > 0 for term in terms)
    )


# Writing the index


def _statements(dialect: str, rows: Sequence[tuple[int, str]], replace: bool) -> list[tuple[Any, Any]]:
    if not rows:
        return []
    ids = [record_id for record_id, _ in rows]
    values = [{"record_id": record_id, "grams": grams} for record_id, grams in rows]
    if dialect == "sqlite":
        statements: list[tuple[Any, Any]] = []
        if replace:  # the delete trigger takes the old entries out of the FTS index
            statements.append((delete(MeetingSearch).where(MeetingSearch.record_id.in_(ids)), None))
        statements.append((insert(_SEARCH), values))  # Core, not the ORM: bulk loads take one executemany
        statements.append(
            (
                text("INSERT INTO meeting_search_fts(rowid, grams) VALUES (:record_id, :grams)"),
                values,
            )
        )
        return statements
    upsert = pg_insert(MeetingSearch)
    return [
        (
            upsert.on_conflict_do_update(index_elements=["record_id"], set_={"grams": upsert.excluded.grams}),
            values,
        )
    ]


async def index_records(db: AsyncSession, rows: Sequence[tuple[int, str]], replace: bool = True) -> None:
    """Store ``(record id, grams)`` rows and their index entries, replacing what was there.

    ``replace=False`` for records that have never been indexed (a bulk load): one executemany per table."""
    dialect = db.get_bind().dialect.name
    for statement, params in _statements(dialect, rows, replace):
        await db.execute(statement, params)
