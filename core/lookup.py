"""One rule for finding a row by what a researcher types: its name or its id.

Commands, agent specs and services accept a persona, a study or a dataset "by id or name".
They all resolve a reference the same way:

1. `#12` or `id:12` is the row with id 12, and nothing else (never a name);
2. otherwise the row whose name is exactly the reference wins;
3. otherwise a reference of digits only (`12`), or a Python int, is an id;
4. otherwise nothing matches, and the error lists the names there are.

So a name always means itself, even a name that looks like an id: a persona named "3" is
`3`, and the persona with id 3 is then `#3`. Names are what the pages show and what stored
specs keep, so they must never be shadowed by an id. (The one thing the rule cannot reach
by name is a name that is itself of the form `#12` or `id:12`.)
"""
from __future__ import annotations

import re

from django.db.models import Manager, Model, QuerySet

ID_REFERENCE = re.compile(r"(?:#|id:)\s*([0-9]+)", re.IGNORECASE)
KNOWN_LISTED = 20
# The largest id a 64-bit integer column holds (BigAutoField, SQLite's INTEGER): a larger
# number reaching a query is an OverflowError (SQLite) or a DataError (PostgreSQL), a 500.
MAX_ID = 2**63 - 1
_ASCII_DIGITS = re.compile(r"[0-9]+")


def parse_id(text: str | int | None) -> int | None:
    """`text` as a row id if it is one: ASCII digits (not "²" or "１２", which `str.isdigit`
    accepts and `int` does not, or reads as another number) of a value from 1 to MAX_ID.
    Anything else is None, for the caller to treat as "no such row" or as a name."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text if 1 <= text <= MAX_ID else None
    if text is None or not _ASCII_DIGITS.fullmatch(text) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def lookup_by_id_or_name(rows: Manager | QuerySet, reference: str | int, *, kind: str,
                         name_field: str = "name") -> Model:
    """The row of `rows` that `reference` names by the module's rule.

    Raises the model's `DoesNotExist` with a message that lists the names there are, e.g.
    `no persona with the id or name 'x' (personas: a, b)`; the exception also carries
    `reference` (the reference, stripped) and `known` (that list) for callers that word
    the error their own way.
    """
    text = str(reference).strip()
    forced = ID_REFERENCE.fullmatch(text)
    if forced is not None:
        pk = parse_id(forced.group(1))
        found = rows.filter(pk=pk).first() if pk is not None else None
    elif isinstance(reference, int):
        pk = parse_id(reference)
        found = rows.filter(pk=pk).first() if pk is not None else None
    else:
        found = rows.filter(**{name_field: text}).first()
        if found is None and parse_id(text) is not None:
            found = rows.filter(pk=parse_id(text)).first()
    if found is not None:
        return found
    known = known_names(rows, name_field=name_field)
    error = rows.model.DoesNotExist(
        f"no {kind} with the id or name '{text}' ({_plural(kind)}: {known})")
    error.reference, error.known = text, known
    raise error


def known_names(rows: Manager | QuerySet, *, name_field: str = "name") -> str:
    """The names of `rows` for an error message: sorted, at most KNOWN_LISTED of them."""
    names = list(rows.order_by(name_field).values_list(name_field, flat=True)[:KNOWN_LISTED + 1])
    if not names:
        return "none yet"
    more = ", ..." if len(names) > KNOWN_LISTED else ""
    return ", ".join(names[:KNOWN_LISTED]) + more


def _plural(kind: str) -> str:
    return f"{kind[:-1]}ies" if kind.endswith("y") else f"{kind}s"
