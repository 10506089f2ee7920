"""Database URLs for the store's tests: a SQLite file, and a throw-away database on the PostgreSQL server
of the development and CI machines (127.0.0.1:5432, trust auth; `.ci/run` starts one when none answers)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from speeltuin.defaults import sqlite_url

POSTGRES_ADMIN_URL = os.environ.get("SPEELTUIN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_database() -> Iterator[str]:
    """A new, empty database for one test; dropped afterwards."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"speeltuin_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        message = f"no PostgreSQL server at {POSTGRES_ADMIN_URL}: {str(exc).splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must test both backends; .ci/run starts the server
        pytest.skip(message)
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "postgresql":
        yield from postgres_database()
    else:
        yield sqlite_url(tmp_path / "store.sqlite")
