"""The base every rules section builds on."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Rules sections refuse unknown keys (a typo is an error, never silently ignored) and never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
