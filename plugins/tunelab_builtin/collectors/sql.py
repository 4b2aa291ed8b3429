"""The ``sql`` collector: the rows of a SQL query, through SQLAlchemy.

The query runs in a transaction that is rolled back, SQLite files are opened
read-only, and only read statements are accepted. The credentials in the URL (the
password, and secret query parameters such as ``?password=``) never appear in row ids,
the ``source`` column or any message (``user:***@host``, ``?sslpassword=***``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tunelab.api import StageContext
from tunelab.redaction import redact_url, url_secrets
from tunelab_builtin.collectors._records import RawRecord, RecordCollector, RecordOptions, SourceError, require_module

#: statements that only read; anything else is refused before it reaches the database
READ_STATEMENTS = ("select", "with", "values", "table", "show", "explain", "describe", "desc")
_SQL_COMMENTS = re.compile(r"(--[^\n]*(\n|$))|(/\*.*?\*/)", re.S)


def redact_db_url(url: str) -> str:
    """``postgresql://user:***@host/db?user=etl&password=***`` for a URL with a password in its
    userinfo or its query string (``sqlite:///x.db?password=...``, ``sslpassword=...``)."""
    return redact_url(url)


@dataclass
class SqlSourceConfig(RecordOptions):
    #: SQLAlchemy database URL, e.g. sqlite:///tickets.db or postgresql://user:password@host/db
    #: (the password is never shown)
    url: str = "???"
    #: a read-only statement (SELECT or WITH ...); use :name placeholders for the values in params
    query: str = "???"
    #: values for the :name placeholders of the query (null: none)
    params: Optional[dict[str, Any]] = None
    #: column whose value makes the row id (sql:<value>); empty: the row number (sql:1, sql:2, ...)
    id_column: str = ""


class SqlCollector(RecordCollector):
    """Rows of a read-only SQL query through SQLAlchemy (any database it supports)."""

    def __init__(self, config: SqlSourceConfig):
        super().__init__(config)
        if not config.url.strip():
            raise ValueError("data.url must be a SQLAlchemy URL, e.g. sqlite:///tickets.db")
        statement = _SQL_COMMENTS.sub(" ", config.query).strip()
        first = statement.split(None, 1)[0].lower() if statement else ""
        if first not in READ_STATEMENTS:
            raise ValueError(
                f"data.query must be a read-only statement starting with SELECT or WITH, got {config.query[:80]!r}"
            )

    def _scrub(self, text: str) -> str:
        """``text`` without the URL's credentials: a driver's message may quote the URL, or the
        password alone (as written or percent-decoded)."""
        from urllib.parse import unquote

        text = text.replace(self.config.url, redact_db_url(self.config.url))
        for secret in url_secrets(self.config.url):
            for form in {secret, unquote(secret)}:
                text = text.replace(form, "***")
        return text

    def _sqlite_file(self) -> Path | None:
        from sqlalchemy.engine import make_url

        url = make_url(self.config.url)
        if (
            url.get_backend_name() != "sqlite"
            or url.database in (None, "", ":memory:")
            or url.database.startswith("file:")
        ):
            return None
        return Path(url.database).expanduser()

    def input_files(self) -> list[Path]:
        try:
            database = self._sqlite_file()
        except Exception:  # noqa: BLE001 - a bad URL is reported by collect(), with advice
            return []
        return [database] if database is not None else []

    def _engine(self):
        import sqlite3

        import sqlalchemy
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        shown = redact_db_url(self.config.url)
        try:
            database = self._sqlite_file()
            if database is not None:
                if not database.is_file():
                    raise SourceError(
                        f"data.url {shown}: the SQLite file '{database}' does not exist "
                        f"(working directory: {Path.cwd()})"
                    )
                # read-only, so no statement can change the user's database
                uri = f"{database.resolve().as_uri()}?mode=ro"
                return sqlalchemy.create_engine("sqlite://", creator=lambda: _sqlite_connect(sqlite3, uri))
            return sqlalchemy.create_engine(self.config.url)
        except NoSuchModuleError:
            raise SourceError(
                f"data.url {shown}: unknown database type; see the SQLAlchemy dialects (sqlite, postgresql, mysql, ...)"
            ) from None
        except ArgumentError as exc:
            raise SourceError(
                f"data.url {shown} is not a valid SQLAlchemy URL ({self._scrub(str(exc))}); "
                "e.g. sqlite:///tickets.db or postgresql://user:password@host/dbname"
            ) from None
        except ModuleNotFoundError as exc:
            raise SourceError(
                f"data.url {shown}: the database driver is not installed (No module named '{exc.name}'); pip install it"
            ) from None

    def _reason(self, exc: Exception) -> str:
        original = getattr(exc, "orig", None)
        text = str(original) if original is not None else str(exc).split("\n")[0]
        return self._scrub(text.strip())

    def raw_records(self, ctx: StageContext) -> Iterator[RawRecord]:
        require_module("sqlalchemy", "sql", "sqlalchemy")
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

        c = self.config
        shown = redact_db_url(c.url)
        engine = self._engine()
        try:
            try:
                connection = engine.connect()
            except SQLAlchemyError as exc:
                raise SourceError(f"cannot connect to {shown}: {self._reason(exc)}") from None
            with connection:
                try:
                    result = connection.execute(text(c.query), dict(c.params or {}))
                except (StatementError, DBAPIError) as exc:
                    cause = self._reason(exc)
                    if "bind parameter" in cause:
                        cause += "; give its value in data.params"
                    raise SourceError(f"data.query failed: {cause}. Query: {c.query.strip()[:300]}") from None
                if not result.returns_rows:
                    raise SourceError("data.query returned no result set; it must be a SELECT")
                columns = list(result.keys())
                duplicated = sorted({name for name in columns if columns.count(name) > 1})
                if duplicated:
                    raise SourceError(
                        f"data.query returns the column(s) {duplicated} more than once; rename them with AS"
                    )
                if c.id_column and c.id_column not in columns:
                    raise SourceError(
                        f"data.id_column '{c.id_column}' is not a column of the query result "
                        f"(columns: {', '.join(columns)})"
                    )
                fetched = result.fetchall()
                connection.rollback()  # a collector never changes the database
        except SQLAlchemyError as exc:
            raise SourceError(f"reading {shown} failed: {self._reason(exc)}") from None
        finally:
            engine.dispose()
        seen: dict[str, int] = {}
        for number, values in enumerate(fetched, start=1):
            undecodable = [name for name, value in zip(columns, values) if isinstance(value, _NotUtf8)]
            if undecodable:
                ctx.quarantine(
                    shown,
                    number,
                    f"column(s) {', '.join(undecodable)} hold TEXT that is not valid UTF-8; "
                    "fix the data, or select the column as a BLOB (CAST(column AS BLOB)) in data.query",
                )
                continue
            record = {name: _plain(value) for name, value in zip(columns, values)}
            if c.id_column:
                key = record[c.id_column]
                if key is None:
                    ctx.quarantine(shown, number, f"id_column '{c.id_column}' is null", None)
                    continue
                key = str(key)
                if key in seen:
                    # the value is row data (an e-mail address, a name): it stays out of the message
                    raise SourceError(
                        f"data.id_column '{c.id_column}' is not unique: rows {seen[key]} and {number} of the "
                        "query have the same value; pick a unique column or leave data.id_column empty"
                    )
                seen[key] = number
                row_id = f"sql:{key}"
            else:
                row_id = f"sql:{number}"
            yield RawRecord(shown, number, row_id, record)


class _NotUtf8(bytes):
    """A SQLite TEXT value whose bytes are not UTF-8 (its row is quarantined)."""


def _sqlite_text(raw: bytes) -> Any:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _NotUtf8(raw)


def _sqlite_connect(sqlite3: Any, uri: str) -> Any:
    """A read-only SQLite connection whose undecodable TEXT values come back as
    :class:`_NotUtf8` (one bad value must not fail the whole query)."""
    connection = sqlite3.connect(uri, uri=True)
    connection.text_factory = _sqlite_text
    return connection


def _plain(value: Any) -> Any:
    """Database values Arrow cannot store directly, as plain Python values."""
    import decimal
    import uuid

    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, memoryview):
        return value.tobytes()
    return value
