"""The scratch PostgreSQL databases the benchmarks create, fill and drop again."""
from __future__ import annotations

import psycopg
from psycopg import sql


def recreate(server: str, name: str) -> None:
    """Drops database `name` on `server` (a postgresql:// URL without a database) if it
    exists, even with open connections, and creates it empty."""
    drop(server, name)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop(server: str, name: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def settings(server: str, names: tuple[str, ...]) -> dict[str, str]:
    """The server's values of the settings `names` (SHOW), for the report."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        return {name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
                for name in names}
