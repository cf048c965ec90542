"""The report's charts, drawn with matplotlib (Agg: no display, no system library) as PNG bytes.

Fonts: matplotlib's own DejaVu Sans, the font of the PDF too. On its import, matplotlib.font_manager
reads a font list from the user's cache, or builds one by opening every font of the system (a
minute on a desktop full of fonts; at every start where the cache cannot be kept, as in a read-only
container) and writes it there. The reports need none of those fonts: ``_own_fonts_only`` has the
list made of the fonts matplotlib ships (well under a second), in a temporary directory, leaving
the user's cache alone; the charts then look the same on every machine.

Speed: a thousand reports draw five thousand charts. Each kind of chart is laid out once per process
and shape (the month's days; the number of profiles or applications; the language), its figure,
axes, ticks, legend and colour bar kept; a report only sets its bars' sizes, its image's data, its
labels and the axes' limits, then draws (Agg) and encodes the PNG. Text sizes are then measured
once (matplotlib caches them per renderer), ticks are not made again. Drawing is serialised by a
lock (a figure is not drawn by two threads at once).
"""

from __future__ import annotations

import importlib
import io
import logging
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import date

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

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from ent_exporter.aggregation.periods import zone_name  # noqa: E402
from ent_exporter.reports import labels  # noqa: E402
from ent_exporter.reports.figures import TOTAL, Report  # noqa: E402

BLUE, ORANGE, GREY = "#1f5fa8", "#e8871e", "#b9c3cf"
DPI = 110
matplotlib.rcParams["font.family"] = (
    "DejaVu Sans"  # matplotlib's own (see _own_fonts_only), whatever a matplotlibrc says
)
# The PNG's zlib level: 1 is several times faster than Pillow's default (6) on these flat-coloured
# charts, for files about a sixth larger.
PNG_OPTIONS = {"compress_level": 1}


def _png(figure: Figure) -> bytes:
    """The figure as an RGB PNG (its background is opaque: an alpha channel would say nothing, and the
    PDF would have to check it and store it apart)."""
    from PIL import Image

    # The canvas itself, not savefig: savefig lays a figure with a layout engine out on a renderer of
    # its own first (every text measured again), then draws it; the canvas draws once, on its
    # renderer (kept while the figure's size is), the layout included.
    canvas = figure.canvas
    canvas.draw()
    width, height = canvas.get_width_height(physical=True)
    image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)  # type: ignore[attr-defined]
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "PNG", dpi=(figure.dpi, figure.dpi), **PNG_OPTIONS)
    return buffer.getvalue()


def _figure(width: float = 7.0, height: float = 2.6) -> tuple[Figure, Axes]:
    """A figure of its own (no pyplot: nothing global to close), one axes."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=8)
    return figure, axes


def _integer_axis(axes, language: str, axis: str = "y") -> None:
    target = axes.yaxis if axis == "y" else axes.xaxis
    target.set_major_locator(MaxNLocator(integer=True, nbins=5))
    target.set_major_formatter(FuncFormatter(lambda value, _pos: labels.number(language, value)))


def _rescale(axes: Axes, x: bool = True, y: bool = True) -> None:
    """The axes' limits from their bars as they are now (as a new chart of these bars would have)."""
    axes.relim()
    axes.autoscale_view(scalex=x, scaley=y)


_MOST_LAYOUTS = 256  # layouts kept per chart (a month has a few dozen of each); beyond, made again
_NEAR_END = 0.1  # a tick label this close to its axis's end (a fraction of the axis) may reach beyond it
# Such a label's place in the layout's key, to a thousandth of the axis (under a pixel): a kept layout may stand
# a fraction of a pixel from a fresh one, its anti-aliased edges differing with the reports rendered before.
_PLACE_DIGITS = 3


class _Chart:
    """One kind of chart, laid out once for a shape; ``draw`` puts a report's data in and returns the PNG.

    The constrained layout (the axes placed around their tick labels, axis labels, legend and colour
    bar) was two fifths of a chart's time, made again at every draw. It depends on those texts and
    on where the labels at the ends of each axis stand: ``png`` keeps the axes' positions found for
    each of them (``_layout_key``) and puts them back, the layout engine off, when a report's chart
    has the same; otherwise it lays the chart out again."""

    figure: Figure
    layouts: dict[tuple, list[tuple[Axes, Bbox]]]

    def draw(self, report: Report, language: str, *extra) -> bytes:
        raise NotImplementedError

    def png(self) -> bytes:
        layouts = self.__dict__.setdefault("layouts", {})
        key = _layout_key(self.figure)
        positions = layouts.get(key)
        if positions is None:
            self.figure.set_layout_engine("constrained")
            png = _png(self.figure)
            if len(layouts) >= _MOST_LAYOUTS:
                layouts.clear()
            layouts[key] = [(axes, axes.get_position(original=True).frozen()) for axes in self.figure.axes]
            return png
        self.figure.set_layout_engine("none")
        for axes, position in positions:
            axes.set_position(position, which="both")
            axes.set_in_layout(True)  # (set_position takes an axes out of the layout: back in for the next one)
        return _png(self.figure)


def _layout_key(figure: Figure) -> tuple:
    """What the constrained layout of ``figure`` depends on: each axis's tick labels as they will be
    drawn (its locator and formatter at the current limits), with the place of those near the axis's
    ends (to a thousandth of the axis, _PLACE_DIGITS; a label there may reach beyond the axis); the
    axis labels; the texts placed on the axes, with their positions. Legends and titles do not change."""
    key: list[object] = []
    for axes in figure.axes:
        for axis in (axes.xaxis, axes.yaxis):
            low, high = axis.get_view_interval()
            span = (high - low) or 1.0
            places = [(tick - low) / span for tick in axis.get_major_locator()()]
            shown = [
                (tick, place) for tick, place in zip(axis.get_major_locator()(), places) if -1e-9 <= place <= 1 + 1e-9
            ]
            labels_ = axis.get_major_formatter().format_ticks([tick for tick, _ in shown])
            ends = tuple(
                round(place, _PLACE_DIGITS) for _, place in shown if place < _NEAR_END or place > 1 - _NEAR_END
            )
            key.append((axis.get_visible(), tuple(labels_), ends, axis.get_label_text()))
        key.extend((text.get_text(), text.get_position()) for text in axes.texts)
    return tuple(key)


class _PerDay(_Chart):
    """Connections per day of the month (the month's days: one layout per month), weekends grey."""

    def __init__(self, days: tuple[date, ...], language: str) -> None:
        self.figure, self.axes = _figure()
        colours = [GREY if day.isoweekday() >= 6 else BLUE for day in days]
        self.bars = list(self.axes.bar(range(len(days)), [0] * len(days), color=colours, width=0.8))
        self.axes.set_xticks(range(len(days)), [str(day.day) for day in days], fontsize=7)
        self.axes.set_xlim(-0.6, len(days) - 0.4)
        self.axes.set_xlabel(labels.text(language, "day_of_month"), fontsize=8)
        self.axes.set_ylabel(labels.text(language, "connections"), fontsize=8)
        self.axes.legend(
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
        _integer_axis(self.axes, language)

    def draw(self, report: Report, language: str, *extra) -> bytes:
        for bar, value in zip(self.bars, report.current.per_day.values(), strict=True):
            bar.set_height(value)
        _rescale(self.axes, x=False)
        return self.png()


class _Profiles(_Chart):
    """Visitors per profile (one layout per number of profiles), with the previous month's beside
    them when it is compared."""

    def __init__(self, count: int, compared: bool, language: str) -> None:
        self.figure, self.axes = _figure(7.0, 0.45 * max(count, 2) + 0.6)
        positions = range(count)
        zeros = [0] * count
        if compared:
            self.bars = list(
                self.axes.barh(
                    [y + 0.2 for y in positions], zeros, height=0.4, color=BLUE, label=labels.text(language, "value")
                )
            )
            self.before: list[Rectangle] = list(
                self.axes.barh(
                    [y - 0.2 for y in positions],
                    zeros,
                    height=0.4,
                    color=GREY,
                    label=labels.text(language, "previous_month"),
                )
            )
        else:
            self.bars = list(
                self.axes.barh(list(positions), zeros, height=0.6, color=BLUE, label=labels.text(language, "value"))
            )
            self.before = []
        self.axes.set_yticks(list(positions), [""] * count, fontsize=8)
        self.axes.set_xlabel(labels.text(language, "visitors_axis"), fontsize=8)
        self.axes.legend(fontsize=7, frameon=False, ncol=2, loc="lower right", bbox_to_anchor=(1.0, 1.0))
        _integer_axis(self.axes, language, "x")

    def draw(self, report: Report, language: str, *extra) -> bytes:
        profiles = _profiles_shown(report)
        for bar, profile in zip(self.bars, profiles, strict=True):
            bar.set_width(report.current.profiles[profile].visitors)
        for bar, profile in zip(self.before, profiles, strict=False):
            previous = report.previous.profiles.get(profile)
            bar.set_width(previous.visitors if previous is not None else 0)
        self.axes.set_yticklabels([labels.profile_name(language, p) for p in profiles])
        _rescale(self.axes, y=False)
        return self.png()


class _Applications(_Chart):
    """The most opened applications (one layout per number of them); unopened ones orange."""

    def __init__(self, count: int, language: str) -> None:
        self.figure, self.axes = _figure(7.0, 0.32 * max(count, 2) + 0.6)
        self.bars = list(self.axes.barh(range(count), [0] * count, color=BLUE, height=0.7))
        self.axes.set_yticks(range(count), [""] * count, fontsize=8)
        self.axes.set_xlabel(labels.text(language, "openings"), fontsize=8)
        _integer_axis(self.axes, language, "x")

    def draw(self, report: Report, language: str, *extra) -> bytes:
        names, apps = extra
        for bar, app in zip(self.bars, apps, strict=True):
            value = report.current.apps.get(app, (0, 0))[0]
            bar.set_width(value)
            bar.set_facecolor(BLUE if value else ORANGE)
        self.axes.set_yticklabels([names[app] for app in apps])
        _rescale(self.axes, y=False)
        return self.png()


class _ByHour(_Chart):
    """Connections by weekday and hour: a 7 x 24 grid with its colour scale (one layout per language and zone)."""

    def __init__(self, language: str, zone: str) -> None:
        self.figure, self.axes = _figure(7.0, 2.4)
        self.image = self.axes.imshow([[0] * 24] * 7, aspect="auto", cmap="Blues", interpolation="nearest")
        self.axes.set_yticks(range(7), labels.WEEKDAYS[language], fontsize=8)
        self.axes.set_xticks(range(24), [f"{hour}" for hour in range(24)], fontsize=7)
        self.axes.set_xlabel(labels.text(language, "local_hour", zone=zone), fontsize=8)
        self.axes.spines[["left", "bottom"]].set_visible(False)
        colorbar = self.figure.colorbar(self.image, ax=self.axes, fraction=0.03, pad=0.02)
        colorbar.ax.tick_params(labelsize=7)
        colorbar.set_label(labels.text(language, "connections"), fontsize=8)
        # Through the colour bar (not its axis): it sets its own again whenever the scale changes.
        colorbar.locator = MaxNLocator(integer=True, nbins=5)
        colorbar.formatter = FuncFormatter(lambda value, _pos: labels.number(language, value))

    def draw(self, report: Report, language: str, *extra) -> bytes:
        grid = [[report.current.by_hour[(weekday, hour)] for hour in range(24)] for weekday in range(1, 8)]
        self.image.set_data(grid)
        cells = [cell for row in grid for cell in row]
        self.image.set_clim(min(cells), max(cells))  # as imshow scales a new grid
        return self.png()


class _Accounts(_Chart):
    """Activated and pending accounts per profile, stacked, each bar's activation rate at its end."""

    def __init__(self, count: int, language: str) -> None:
        self.figure, self.axes = _figure(7.0, 0.45 * max(count, 2) + 0.6)
        zeros = [0] * count
        self.activated = list(
            self.axes.barh(range(count), zeros, color=BLUE, height=0.6, label=labels.text(language, "activated"))
        )
        self.pending = list(
            self.axes.barh(range(count), zeros, color=GREY, height=0.6, label=labels.text(language, "pending"))
        )
        self.rates = [self.axes.text(0, y, "", va="center", fontsize=7) for y in range(count)]
        self.axes.set_yticks(range(count), [""] * count, fontsize=8)
        self.axes.set_xlabel(labels.text(language, "accounts"), fontsize=8)
        self.axes.legend(fontsize=7, frameon=False, ncol=2, loc="lower right", bbox_to_anchor=(1.0, 1.0))
        _integer_axis(self.axes, language, "x")

    def draw(self, report: Report, language: str, *extra) -> bytes:
        profiles = _account_profiles(report)
        for y, profile in enumerate(profiles):
            account = report.current.accounts[profile]
            self.activated[y].set_width(account.activated)
            self.pending[y].set_x(account.activated)
            self.pending[y].set_width(account.pending)
            rate = (
                labels.text(language, "withheld")
                if account.ratio is None
                else labels.percent(language, account.ratio, 0)
            )
            self.rates[y].set_position((account.activated + account.pending, y))
            self.rates[y].set_text(" " + rate)
        self.axes.set_yticklabels([labels.profile_name(language, p) for p in profiles])
        _rescale(self.axes, y=False)
        return self.png()


def _profiles_shown(report: Report) -> list[str]:
    """The profiles of the visitors' chart from the bottom up: the table's order (most visitors first, ties by
    profile) reversed, so the chart reads top down as the table does, whatever order the rows came in."""
    profiles = report.current.profiles
    return sorted((p for p in profiles if p != TOTAL), key=lambda p: (-profiles[p].visitors, p))[::-1]


def _account_profiles(report: Report) -> list[str]:
    """The profiles of the accounts' chart from the bottom up: the table's order reversed, as above."""
    accounts = report.current.accounts
    return sorted(
        (p for p in accounts if p != TOTAL), key=lambda p: (-(accounts[p].activated + accounts[p].pending), p)
    )[::-1]


_LAID_OUT: dict[tuple, _Chart] = {}  # (kind, shape...) -> its chart, laid out once per process
_MOST_LAID_OUT = 64  # shapes kept (a month has a handful); beyond, they are made again
_LOCK = threading.Lock()


def _chart(key: tuple, make: Callable[[], _Chart]) -> _Chart:
    chart = _LAID_OUT.get(key)
    if chart is None:
        if len(_LAID_OUT) >= _MOST_LAID_OUT:
            _LAID_OUT.clear()
        chart = _LAID_OUT[key] = make()
    return chart


def connections_per_day(report: Report, language: str) -> bytes:
    days = tuple(report.current.per_day)
    with _LOCK:
        return _chart(("per_day", days, language), lambda: _PerDay(days, language)).draw(report, language)


def visitors_by_profile(report: Report, language: str) -> bytes:
    count = len(_profiles_shown(report))
    # The previous month's bars only when it is compared (wholly covered, and this month is not provisional).
    compared = report.compared("previous") and report.as_of is None
    with _LOCK:
        chart = _chart(("profiles", count, compared, language), lambda: _Profiles(count, compared, language))
        return chart.draw(report, language)


def applications(report: Report, language: str, names: dict[str, str] | None = None, limit: int = 10) -> bytes:
    """The `limit` most opened applications (the table has them all)."""
    names = names or labels.app_names(language, report.apps)
    apps = report.apps[:limit][::-1]
    with _LOCK:
        chart = _chart(("applications", len(apps), language), lambda: _Applications(len(apps), language))
        return chart.draw(report, language, names, apps)


def logins_by_hour(report: Report, language: str) -> bytes:
    zone = labels.zone_words(language, zone_name(report.month.zone))
    with _LOCK:
        return _chart(("by_hour", language, zone), lambda: _ByHour(language, zone)).draw(report, language)


def activation_by_profile(report: Report, language: str) -> bytes:
    count = len(_account_profiles(report))
    with _LOCK:
        return _chart(("accounts", count, language), lambda: _Accounts(count, language)).draw(report, language)


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
