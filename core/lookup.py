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

ID_REFERENCE = re.compile(r"(?:#|id:)\s*(\d+)", re.IGNORECASE)
KNOWN_LISTED = 20


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
        found = rows.filter(pk=int(forced.group(1))).first()
    elif isinstance(reference, int):
        found = rows.filter(pk=reference).first()
    else:
        found = rows.filter(**{name_field: text}).first()
        if found is None and text.isdigit():
            found = rows.filter(pk=int(text)).first()
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
