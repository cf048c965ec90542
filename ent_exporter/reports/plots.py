"""The report's charts, drawn with matplotlib (Agg: no display, no system library) as PNG bytes.

Fonts: matplotlib's own DejaVu Sans, the font of the PDF too. On its import, matplotlib.font_manager
reads a font list from the user's cache, or builds one by opening every font of the system (a
minute on a desktop full of fonts; at every start where the cache cannot be kept, as in a read-only
container) and writes it there. The reports need none of those fonts: ``_own_fonts_only`` has the
list made of the fonts matplotlib ships (well under a second), in a temporary directory, leaving
the user's cache alone; the charts then look the same on every machine.
"""

from __future__ import annotations

import importlib
import io
import logging
import sys
import tempfile
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, whatever the environment says


def _own_fonts_only() -> None:
    """Imports matplotlib.font_manager with a font list of matplotlib's own fonts: no system scan,
    nothing read from or written to matplotlib's cache directory. Where matplotlib's internals
    differ (``_load_fontmanager`` asks ``matplotlib.get_cachedir``, ``FontManager`` calls
    ``findSystemFonts``), matplotlib does as usual: slower on first use, never wrong."""
    if "matplotlib.font_manager" in sys.modules:
        return
    undo: list[Callable[[], None]] = []
    user_cachedir = matplotlib.get_cachedir
    with tempfile.TemporaryDirectory(prefix="ent-exporter-fonts-") as private:

        def cachedir() -> str:
            manager = sys.modules.get("matplotlib.font_manager")
            scan = getattr(manager, "findSystemFonts", None)
            if scan is not None and not undo:

                def shipped_only(fontpaths: object = None, fontext: str = "ttf") -> list[str]:
                    return [] if fontpaths is None else list(scan(fontpaths, fontext))

                manager.findSystemFonts = shipped_only  # type: ignore[union-attr]
                undo.append(lambda: setattr(manager, "findSystemFonts", scan))
            return private

        matplotlib.get_cachedir = cachedir
        log = logging.getLogger("matplotlib.font_manager")
        level = log.level
        log.setLevel(logging.WARNING)  # not "generated new fontManager": no cache is made
        try:
            importlib.import_module("matplotlib.font_manager")
        finally:
            matplotlib.get_cachedir = user_cachedir
            log.setLevel(level)
            for step in undo:
                step()


_own_fonts_only()

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ent_exporter.aggregation.periods import zone_name  # noqa: E402
from ent_exporter.reports import labels  # noqa: E402
from ent_exporter.reports.figures import TOTAL, Report  # noqa: E402

BLUE, ORANGE, GREY = "#1f5fa8", "#e8871e", "#b9c3cf"
DPI = 110
plt.rcParams["font.family"] = "DejaVu Sans"  # matplotlib's own (see _own_fonts_only), whatever a matplotlibrc says


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
    axes.set_xlabel(labels.text(language, "day_of_month"), fontsize=8)
    axes.set_ylabel(labels.text(language, "connections"), fontsize=8)
    axes.legend(
        handles=[
            Patch(color=BLUE, label=labels.text(language, "weekdays")),
            Patch(color=GREY, label=labels.text(language, "weekend")),
        ],
        fontsize=7,
        frameon=False,
        ncol=2,
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
    )
    _integer_axis(axes, language)
    return _png(figure)


def visitors_by_profile(report: Report, language: str) -> bytes:
    profiles = [
        p for p in sorted(report.current.profiles, key=lambda p: report.current.profiles[p].visitors) if p != TOTAL
    ]
    figure, axes = _figure(7.0, 0.45 * max(len(profiles), 2) + 0.6)
    values = [report.current.profiles[p].visitors for p in profiles]
    positions = range(len(profiles))
    # The previous month's bars only when it is compared (wholly covered, and this month is not provisional).
    if report.compared("previous") and report.as_of is None:
        before = [report.previous.profiles[p].visitors if p in report.previous.profiles else 0 for p in profiles]
        axes.barh([y + 0.2 for y in positions], values, height=0.4, color=BLUE, label=labels.text(language, "value"))
        axes.barh(
            [y - 0.2 for y in positions], before, height=0.4, color=GREY, label=labels.text(language, "previous_month")
        )
    else:
        axes.barh(list(positions), values, height=0.6, color=BLUE, label=labels.text(language, "value"))
    axes.set_yticks(list(positions), [labels.profile_name(language, p) for p in profiles], fontsize=8)
    axes.set_xlabel(labels.text(language, "visitors_axis"), fontsize=8)
    axes.legend(fontsize=7, frameon=False, ncol=2, loc="lower right", bbox_to_anchor=(1.0, 1.0))
    _integer_axis(axes, language, "x")
    return _png(figure)


def applications(report: Report, language: str, names: dict[str, str] | None = None, limit: int = 10) -> bytes:
    """The `limit` most opened applications (the table has them all)."""
    names = names or labels.app_names(language, report.apps)
    apps = report.apps[:limit][::-1]
    figure, axes = _figure(7.0, 0.32 * max(len(apps), 2) + 0.6)
    values = [report.current.apps.get(app, (0, 0))[0] for app in apps]
    axes.barh(range(len(apps)), values, color=[BLUE if v else ORANGE for v in values], height=0.7)
    axes.set_yticks(range(len(apps)), [names[app] for app in apps], fontsize=8)
    axes.set_xlabel(labels.text(language, "openings"), fontsize=8)
    _integer_axis(axes, language, "x")
    return _png(figure)


def logins_by_hour(report: Report, language: str) -> bytes:
    grid = [[report.current.by_hour[(weekday, hour)] for hour in range(24)] for weekday in range(1, 8)]
    figure, axes = _figure(7.0, 2.4)
    image = axes.imshow(grid, aspect="auto", cmap="Blues", interpolation="nearest")
    axes.set_yticks(range(7), labels.WEEKDAYS[language], fontsize=8)
    axes.set_xticks(range(24), [f"{hour}" for hour in range(24)], fontsize=7)
    zone = labels.zone_words(language, zone_name(report.month.zone))
    axes.set_xlabel(labels.text(language, "local_hour", zone=zone), fontsize=8)
    axes.spines[["left", "bottom"]].set_visible(False)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    colorbar.ax.tick_params(labelsize=7)
    colorbar.set_label(labels.text(language, "connections"), fontsize=8)
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
    axes.set_xlabel(labels.text(language, "accounts"), fontsize=8)
    axes.legend(fontsize=7, frameon=False, ncol=2, loc="lower right", bbox_to_anchor=(1.0, 1.0))
    _integer_axis(axes, language, "x")
    return _png(figure)


CHARTS = {
    "connections_per_day": connections_per_day,
    "visitors_by_profile": visitors_by_profile,
    "applications": applications,
    "logins_by_hour": logins_by_hour,
    "accounts_by_profile": activation_by_profile,
}


def charts(report: Report, language: str, names: dict[str, str] | None = None) -> dict[str, bytes]:
    """Every chart; ``names``: the applications' names (labels.app_names), the built-in ones by default."""
    drawn = {key: draw(report, language) for key, draw in CHARTS.items() if key != "applications"}
    drawn["applications"] = applications(report, language, names)
    return {key: drawn[key] for key in CHARTS}
