"""The users table read whole as Arrow, for the diff (which needs everyone: ownership and unique numbers)."""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy import Engine, select

from usersync.core.users_table import users
from usersync.plan.tables import DIFF_COLUMNS, USERS_SCHEMA
from usersync.store.schema_version import ensure_schema


def users_table(engine: Engine, columns: list[str] = DIFF_COLUMNS, size: int = 50_000) -> pa.Table:
    """The users table as Arrow (the diff needs everyone: ownership and unique numbers).

    PostgreSQL: one ``COPY … TO STDOUT`` parsed by Arrow's CSV reader (no Python object per value); others:
    rows fetched in chunks and turned into columns.
    """
    ensure_schema(engine)
    schema = pa.schema([USERS_SCHEMA.field(c) for c in columns])
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        return _copy_out(engine, schema)
    batches = []
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=size).execute(
            select(*[users.c[c] for c in columns]))
        for part in result.partitions(size):
            cols = list(zip(*part))
            batches.append(pa.RecordBatch.from_arrays(
                [pa.array(list(col), type=schema.field(i).type) for i, col in enumerate(cols)], schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


def _copy_out(engine: Engine, schema: pa.Schema) -> pa.Table:
    import io

    from pyarrow import csv

    buffer = io.BytesIO()
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None, "a connection that is open has its DB-API connection"
        cursor = dbapi.cursor()
        try:
            columns = ", ".join(schema.names)
            with cursor.copy(f"COPY (SELECT {columns} FROM {users.name}) TO STDOUT WITH (FORMAT csv)") as copy:
                for chunk in copy:
                    buffer.write(chunk)
        finally:
            cursor.close()
        conn.rollback()
    if not buffer.tell():
        return schema.empty_table()
    buffer.seek(0)
    # CSV: NULL is an unquoted empty field, an empty string a quoted one; booleans are t / f
    return csv.read_csv(buffer, read_options=csv.ReadOptions(column_names=schema.names),
                        convert_options=csv.ConvertOptions(column_types=schema, true_values=["t"], false_values=["f"],
                                                           null_values=[""], strings_can_be_null=True,
                                                           quoted_strings_can_be_null=False))
