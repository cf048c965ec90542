"""The report's charts, drawn with matplotlib (Agg: no display, no system library) as PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, whatever the environment says

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ent_exporter.reports import labels  # noqa: E402
from ent_exporter.reports.figures import TOTAL, Report  # noqa: E402

BLUE, ORANGE, GREY = "#1f5fa8", "#e8871e", "#b9c3cf"
DPI = 110


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def _figure(width: float = 7.0, height: float = 2.6) -> tuple[Figure, Axes]:
    figure, axes = plt.subplots(figsize=(width, height))
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=8)
    return figure, axes


def _integer_axis(axes, language: str, axis: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    target = axes.yaxis if axis == "y" else axes.xaxis
    target.set_major_locator(MaxNLocator(integer=True, nbins=5))
    target.set_major_formatter(FuncFormatter(lambda value, _pos: labels.number(language, value)))


def connections_per_day(report: Report, language: str) -> bytes:
    days = list(report.current.per_day)
    figure, axes = _figure()
    colours = [GREY if day.isoweekday() >= 6 else BLUE for day in days]
    axes.bar(range(len(days)), list(report.current.per_day.values()), color=colours, width=0.8)
    axes.set_xticks(range(len(days)), [str(day.day) for day in days], fontsize=7)
    axes.set_xlim(-0.6, len(days) - 0.4)
    axes.set_ylabel(labels.text(language, "connections"), fontsize=8)
    _integer_axis(axes, language)
    return _png(figure)


def visitors_by_profile(report: Report, language: str) -> bytes:
    profiles = [
        p for p in sorted(report.current.profiles, key=lambda p: report.current.profiles[p].visitors) if p != TOTAL
    ]
    figure, axes = _figure(7.0, 0.45 * max(len(profiles), 2) + 0.6)
    values = [report.current.profiles[p].visitors for p in profiles]
    before = [report.previous.profiles[p].visitors if p in report.previous.profiles else 0 for p in profiles]
    positions = range(len(profiles))
    axes.barh([y + 0.2 for y in positions], values, height=0.4, color=BLUE, label=labels.text(language, "value"))
    axes.barh(
        [y - 0.2 for y in positions], before, height=0.4, color=GREY, label=labels.text(language, "previous_month")
    )
    axes.set_yticks(list(positions), [labels.profile_name(language, p) for p in profiles], fontsize=8)
    axes.legend(fontsize=7, frameon=False, loc="lower right")
    _integer_axis(axes, language, "x")
    return _png(figure)


def applications(report: Report, language: str, limit: int = 15) -> bytes:
    apps = report.apps[:limit][::-1]
    figure, axes = _figure(7.0, 0.32 * max(len(apps), 2) + 0.6)
    values = [report.current.apps.get(app, (0, 0))[0] for app in apps]
    axes.barh(range(len(apps)), values, color=[BLUE if v else ORANGE for v in values], height=0.7)
    axes.set_yticks(range(len(apps)), [labels.app_name(language, app) for app in apps], fontsize=8)
    axes.set_xlabel(labels.text(language, "openings"), fontsize=8)
    _integer_axis(axes, language, "x")
    return _png(figure)


def logins_by_hour(report: Report, language: str) -> bytes:
    grid = [[report.current.by_hour[(weekday, hour)] for hour in range(24)] for weekday in range(1, 8)]
    figure, axes = _figure(7.0, 2.4)
    image = axes.imshow(grid, aspect="auto", cmap="Blues", interpolation="nearest")
    axes.set_yticks(range(7), labels.WEEKDAYS[language], fontsize=8)
    axes.set_xticks(range(24), [f"{hour}" for hour in range(24)], fontsize=7)
    axes.set_xlabel(labels.text(language, "hour"), fontsize=8)
    axes.spines[["left", "bottom"]].set_visible(False)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    colorbar.ax.tick_params(labelsize=7)
    _integer_axis(colorbar.ax, language)
    return _png(figure)


def activation_by_profile(report: Report, language: str) -> bytes:
    profiles = sorted(
        (p for p in report.current.accounts if p != TOTAL),
        key=lambda p: report.current.accounts[p].activated + report.current.accounts[p].pending,
    )
    figure, axes = _figure(7.0, 0.45 * max(len(profiles), 2) + 0.6)
    activated = [report.current.accounts[p].activated for p in profiles]
    pending = [report.current.accounts[p].pending for p in profiles]
    axes.barh(range(len(profiles)), activated, color=BLUE, height=0.6, label=labels.text(language, "activated"))
    axes.barh(
        range(len(profiles)), pending, left=activated, color=GREY, height=0.6, label=labels.text(language, "pending")
    )
    for y, profile in enumerate(profiles):
        account = report.current.accounts[profile]
        axes.text(
            account.activated + account.pending,
            y,
            " "
            + (
                labels.text(language, "withheld")
                if account.ratio is None
                else labels.percent(language, account.ratio, 0)
            ),
            va="center",
            fontsize=7,
        )
    axes.set_yticks(range(len(profiles)), [labels.profile_name(language, p) for p in profiles], fontsize=8)
    axes.legend(fontsize=7, frameon=False, loc="lower right")
    _integer_axis(axes, language, "x")
    return _png(figure)


CHARTS = {
    "connections_per_day": connections_per_day,
    "visitors_by_profile": visitors_by_profile,
    "applications": applications,
    "logins_by_hour": logins_by_hour,
    "accounts_by_profile": activation_by_profile,
}


def charts(report: Report, language: str) -> dict[str, bytes]:
    return {key: draw(report, language) for key, draw in CHARTS.items()}
