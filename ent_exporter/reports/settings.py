"""The ``reports:`` section of the configuration: where and how the daemon writes the monthly reports.

Absent (the default): the daemon writes none; ``ent-exporter report`` still works on demand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Format = Literal["pdf", "html", "csv"]
FORMATS: tuple[Format, ...] = get_args(Format)  # in the order a report set is written
# A month's statement reads every event of the month: far longer than a collector's (source.statement_timeout_seconds).
REPORT_STATEMENT_TIMEOUT_SECONDS = 900.0
# A month's statements at once (each on a connection of the reports' pool): two keep two of the
# database's cores busy (its parallel workers help only part of each plan) without taking over a shared server.
REPORT_CONNECTIONS = 2
Language = Literal["fr", "en"]


class ApplicationName(BaseModel):
    """An application's name in each language (either may be left out: the other is used)."""

    model_config = ConfigDict(extra="forbid")

    fr: str | None = Field(None, min_length=1, description="the name in the French reports")
    en: str | None = Field(None, min_length=1, description="the name in the English reports")

    @model_validator(mode="after")
    def _one_at_least(self) -> ApplicationName:
        if self.fr is None and self.en is None:
            raise ValueError("give fr, en or both")
        return self


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

    applications: dict[str, ApplicationName] = Field(
        default_factory=dict,
        description="names of applications in the reports, by identifier as the source records it (app of"
        " app_access_events): one text, or {fr: ..., en: ...}; they replace the built-in names (Edifice and"
        " Moodle applications)",
    )

    @field_validator("applications", mode="before")
    @classmethod
    def _one_text_for_both(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        names = {}
        for app, name in value.items():
            if isinstance(name, str):
                if not name.strip():
                    raise ValueError(f"{app}: empty name")
                name = {"fr": name, "en": name}
            elif not isinstance(name, dict):
                raise ValueError(f"{app}: a name, or fr: and en: names")
            names[app] = name
        return names

    def app_names(self) -> dict[str, dict[str, str | None]]:
        """``applications`` as ent_exporter.reports.labels takes them."""
        return {app: {"fr": name.fr, "en": name.en} for app, name in self.applications.items()}

    @field_validator("formats")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))
