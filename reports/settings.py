"""The ``reports:`` section of the configuration: where and how the daemon writes the monthly reports.

Absent (the default): the daemon writes none; ``ent-exporter report`` still works on demand.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Format = Literal["pdf", "html", "csv"]
Language = Literal["fr", "en"]


class ReportsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: Path = Field(description="where the reports go: one directory per structure, 'all' for the platform;"
                                        " relative paths are relative to the configuration file")
    formats: list[Format] = Field(default_factory=lambda: ["pdf", "html", "csv"], min_length=1)
    language: Language = "fr"

    @field_validator("formats")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))
