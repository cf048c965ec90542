"""The ``reports:`` section of the configuration: where and how the daemon writes the monthly reports.

Absent (the default): the daemon writes none; ``ent-exporter report`` still works on demand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

Format = Literal["pdf", "html", "csv"]
FORMATS: tuple[Format, ...] = get_args(Format)  # in the order a report set is written
# A month's statement reads every event of the month: far longer than a collector's (source.statement_timeout_seconds).
REPORT_STATEMENT_TIMEOUT_SECONDS = 900.0
Language = Literal["fr", "en"]


class ReportsConfig(BaseModel):
    """Where and how the daemon writes the monthly reports of the month that just closed."""

    model_config = ConfigDict(extra="forbid")

    directory: Path = Field(
        description="where the reports go: one directory per structure, 'all' for the platform;"
        " relative paths are relative to the configuration file"
    )
    formats: list[Format] = Field(
        default_factory=lambda: list(FORMATS), min_length=1, description="the formats written"
    )
    language: Language = Field(default="fr", description="the language of the reports: French or English")
    statement_timeout_seconds: float = Field(
        REPORT_STATEMENT_TIMEOUT_SECONDS,
        gt=0,
        description="bound of each report statement (a month of a regional platform reads millions of rows)",
    )

    @field_validator("formats")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))
