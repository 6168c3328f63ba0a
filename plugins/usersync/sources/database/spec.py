"""``source.type: database``: a SQL database, a table or one read-only SELECT, streamed in chunks."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from usersync.sources.spec import ConnectedSpec


class DatabaseSourceSpec(ConnectedSpec):
    """A SQL database: a table or one read-only SELECT, streamed in chunks."""

    account_forms: ClassVar[str] = "the key column's value (or the anchor column's)"
    example_source: ClassVar[dict[str, Any]] = {"key_attribute": "username", "table": "users", "domain": "EXAMPLE"}
    example_fields: ClassVar[dict[str, Any]] = {
        "username": {"policy": "import", "attribute": "username", "transforms": ["lower"]},
        "first_name": {"policy": "import", "attribute": "first_name"},
        "last_name": {"policy": "import", "attribute": "last_name"},
        "email": {"policy": "import", "attribute": "email", "transforms": ["lower"]},
        "department": {"policy": "import", "attribute": "department"},
        "extension": {"policy": "import", "attribute": "extension"},
        "mobile": {"policy": "import", "attribute": "mobile"},
        "language": {"policy": "on_insert", "value": "en"},
        "enabled": {"policy": "on_insert", "value": True}}
    type: Literal["database"]
    table: str | None = None
    query: str | None = None
    chunk_size: Annotated[int, Field(ge=1, le=100_000)] = 5000

    @model_validator(mode="after")
    def _table_or_query(self) -> DatabaseSourceSpec:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        plain_name = r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?"
        if self.table is not None and not re.fullmatch(plain_name, self.table):
            raise ValueError(f"'table' must be a plain (optionally schema-qualified) name, not {self.table!r}")
        if self.query is not None:
            q = self.query.strip().rstrip(";").strip()
            if not re.match(r"(?is)^(select|with)\b", q) or ";" in q:
                raise ValueError("'query' must be one read-only SELECT (or WITH … SELECT) statement")
        return self

    def describe(self) -> str:
        return f"table `{self.table}`" if self.table else "a SELECT query"
