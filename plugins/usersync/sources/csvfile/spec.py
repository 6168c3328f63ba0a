"""``source.type: csv``: a CSV file imported on demand; the file is chosen when the import is triggered."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from usersync.sources.spec import SourceSpecBase


class CsvSourceSpec(SourceSpecBase):
    """A CSV file imported on demand (never deletes). The file is chosen when the import is triggered."""

    on_demand: ClassVar[bool] = True

    account_forms: ClassVar[str] = "the key column's value, or 'line N'"
    example_source: ClassVar[dict[str, Any]] = {"key_attribute": "username", "domain": "EXAMPLE"}
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
    type: Literal["csv"]
    #: Folder the imported files must be in. Default: $USERSYNC_IMPORTS_DIR, else $USERSYNC_HOME/imports.
    imports_dir: str | None = None

    def describe(self) -> str:
        return f"CSV files under `{self.imports_dir or '$USERSYNC_IMPORTS_DIR'}`"
