"""Writes a report's files: PDF (fpdf2), a self-contained HTML page, and one CSV per indicator.

Files of one structure go into their own directory, named by the structure's code; the
platform's into ``all`` (as ``structure="all"`` in the metrics):

    OUT/<structure id>/<YYYY-MM>.pdf
    OUT/<structure id>/<YYYY-MM>.html
    OUT/<structure id>/<YYYY-MM>-<indicator>.csv

so a head of establishment can be given their directory (a share, a mail rule) and nothing else.
Each file is written to a new temporary file and renamed: a reader never sees half a report. The
output directory may be a symbolic link; a structure's directory under it may not (refused, never
followed), and a symbolic link planted at a file's name is replaced, never written through
(ent_exporter.engine.files).
"""

from __future__ import annotations

import base64
import csv
import functools
import html
import io
import re
from pathlib import Path

from ent_exporter.engine.files import Directory
from ent_exporter.reports.document import Document, Section

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def directory_name(structure_id: str) -> str:
    """A structure's code as a directory name (UAI codes are kept as they are)."""
    name = _UNSAFE.sub("_", structure_id)
    return "_" + name if name.startswith(".") or not name else name


# -- CSV ----------------------------------------------------------------------------------------


def csv_bytes(section: Section) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(section.csv_header)
    writer.writerows(section.csv_rows)
    return buffer.getvalue().encode()


# -- PDF ----------------------------------------------------------------------------------------


def _font_files() -> tuple[str, str]:
    """DejaVu Sans from matplotlib's own data: every accent and dash, nothing to install."""
    import matplotlib

    directory = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return str(directory / "DejaVuSans.ttf"), str(directory / "DejaVuSans-Bold.ttf")


# What the reports write: Latin scripts, punctuation, currency, arrows, mathematical signs, shapes.
LATIN_RANGES = ((0x20, 0x7E), (0xA0, 0x24F), (0x2000, 0x206F), (0x20A0, 0x20CF), (0x2100, 0x22FF), (0x25A0, 0x25FF))


@functools.cache
def _latin_font_files() -> tuple[str, str] | None:
    """DejaVu Sans cut down to LATIN_RANGES (about 900 of its 6,000 glyphs), made once per process
    into a temporary directory (removed at exit). fpdf2 parses the whole font file of every
    document (``add_font``) and subsets it when writing: with the full font that was most of a
    PDF's time. None when it cannot be made (then the full font is used)."""
    import atexit
    import shutil
    import tempfile

    from fontTools import subset

    try:
        directory = tempfile.mkdtemp(prefix="ent-exporter-pdf-fonts-")
    except OSError:
        return None
    atexit.register(shutil.rmtree, directory, True)
    options = subset.Options(notdef_outline=True, recommended_glyphs=True, glyph_names=True)
    options.name_IDs, options.name_languages, options.layout_features = ["*"], ["*"], []
    unicodes = [code for first, last in LATIN_RANGES for code in range(first, last + 1)]
    made = []
    try:
        for source in _font_files():
            font = subset.load_font(source, options)
            subsetter = subset.Subsetter(options)
            subsetter.populate(unicodes=unicodes)
            subsetter.subset(font)
            target = str(Path(directory) / Path(source).name)
            subset.save_font(font, target, options)
            made.append(target)
    except OSError:
        return None
    return made[0], made[1]


NOTICE_RGB = (163, 72, 0)  # Document.notes: dark orange, bold (PDF and HTML)
HEADING_HEIGHT = 22  # mm: a section's title and sentence, above its chart
MIN_CHART_SCALE = 0.7


def pdf_bytes(document: Document, charts: dict[str, bytes]) -> bytes:
    """The PDF, with the Latin cut of the font (_latin_font_files); drawn again with the whole font
    when a character of the document is not in it (a name in another script: fpdf2 notes the
    characters it finds no glyph for as it lays out the text, before writing the file)."""
    import logging

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # font subsetting narrates every table at INFO
    latin = _latin_font_files()
    if latin is not None:
        pdf = _pdf(document, charts, latin)
        if not any(getattr(font, "missing_glyphs", None) for font in pdf.fonts.values()):
            return bytes(pdf.output())
    return bytes(_pdf(document, charts, _font_files()).output())


def _pdf(document: Document, charts: dict[str, bytes], fonts: tuple[str, str]):
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    regular, bold = fonts
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_creator("ent-exporter")
    pdf.set_title(document.title)
    pdf.set_lang(document.language)
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_margins(15, 15, 15)
    pdf.add_font("DejaVu", "", regular)
    pdf.add_font("DejaVu", "B", bold)
    footer_text = f"{document.subtitle} — {document.title}"

    def footer() -> None:  # page numbers, the structure and the month on every page
        pdf.set_y(-12)
        pdf.set_font("DejaVu", "", 7)
        pdf.set_text_color(110)
        pdf.cell(0, 5, f"{footer_text} — {pdf.page_no()}/{{nb}}", align="C")

    pdf.footer = footer  # type: ignore[method-assign]
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.multi_cell(0, 7, document.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "B", 12)
    pdf.set_text_color(31, 95, 168)
    pdf.multi_cell(0, 7, document.subtitle, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0)
    pdf.set_font("DejaVu", "", 8)
    pdf.multi_cell(0, 4, document.period, new_x="LMARGIN", new_y="NEXT")
    if document.notes:  # what the reader must know about the figures: a paragraph of its own, below the period
        pdf.ln(1)
        pdf.set_font("DejaVu", "B", 9)
        pdf.set_text_color(*NOTICE_RGB)
        for note in document.notes:
            pdf.multi_cell(0, 4.5, note, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)
    pdf.ln(2)
    if document.lead:
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(0, 5, document.lead, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    width = pdf.epw
    for index, section in enumerate(document.sections):
        image = charts.get(section.chart) if section.chart else None
        # The title, its sentence and the chart stay together (the table may run onto the next page).
        # A chart a little too tall for the rest of the page is drawn smaller rather than leave the
        # page half empty: down to MIN_CHART_SCALE of its width, centred.
        chart_width, chart_height = width, (width * _aspect(image) if image else 10)
        room = pdf.page_break_trigger - pdf.get_y() - HEADING_HEIGHT
        if index and chart_height > room:
            if image and room >= MIN_CHART_SCALE * chart_height:
                chart_width = width * room / chart_height
            else:
                pdf.add_page()
        pdf.set_font("DejaVu", "B", 11)
        pdf.cell(0, 7, section.title, new_x="LMARGIN", new_y="NEXT")
        if section.description:
            pdf.set_font("DejaVu", "", 8)
            pdf.set_text_color(80)
            pdf.multi_cell(0, 4, section.description, new_x="LMARGIN", new_y="NEXT")
            pdf.set_text_color(0)
        pdf.ln(1)
        if image:
            pdf.image(io.BytesIO(image), x=pdf.l_margin + (width - chart_width) / 2, w=chart_width)
            pdf.ln(1)
        if section.compact:
            continue  # every value is in the chart and in the section's CSV
        pdf.set_font("DejaVu", "", 8)
        widths = (2.6, *[1] * (len(section.header) - 1)) if section.key == "summary" else None
        with pdf.table(
            col_widths=widths,
            headings_style=FontFace(emphasis="BOLD", fill_color=(230, 236, 244)),
            text_align=("LEFT", *["RIGHT"] * (len(section.header) - 1)),
            line_height=4.6,
            padding=0.8,
            first_row_as_headings=True,
        ) as table:
            for row in [section.header, *section.rows]:
                table.row(row)
        if section.note:
            pdf.ln(1)
            pdf.set_font("DejaVu", "", 7)
            pdf.set_text_color(80)
            pdf.multi_cell(0, 3.5, section.note, new_x="LMARGIN", new_y="NEXT")
            pdf.set_text_color(0)
        pdf.ln(3)
    pdf.ln(2)
    pdf.set_font("DejaVu", "", 7)
    pdf.set_text_color(90)
    pdf.multi_cell(0, 3.5, document.footnote, new_x="LMARGIN", new_y="NEXT")
    return pdf


def _aspect(png: bytes) -> float:
    """Height / width of a PNG (its IHDR chunk)."""
    width = int.from_bytes(png[16:20], "big")
    height = int.from_bytes(png[20:24], "big")
    return height / width if width else 0.0


# -- HTML ---------------------------------------------------------------------------------------

_STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.5rem;margin-bottom:.2rem}.lead{font-size:1.05rem;line-height:1.45}h2{font-size:1.15rem;margin-top:2rem}
.sub{color:#1f5fa8;font-weight:bold;font-size:1.1rem}.note{color:#555;font-size:.85rem}
.notice{color:#a34800;font-weight:bold;font-size:.95rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #c9d2dc;padding:.2rem .5rem}th{background:#e6ecf4;text-align:left}
td:not(:first-child){text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}
details{margin:.5rem 0}
"""


def html_bytes(document: Document, charts: dict[str, bytes], csv_names: dict[str, str]) -> bytes:
    e = html.escape
    parts = [
        f'<!DOCTYPE html>\n<html lang="{e(document.language)}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{e(document.title)} — {e(document.subtitle)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n",
        f'<h1>{e(document.title)}</h1>\n<p class="sub">{e(document.subtitle)}</p>\n'
        f'<p class="note">{e(document.period)}</p>\n',
        *(f'<p class="notice">{e(note)}</p>\n' for note in document.notes),
    ]
    if document.lead:
        parts.append(f'<p class="lead">{e(document.lead)}</p>\n')
    for section in document.sections:
        parts.append(f'<section id="{e(section.key)}">\n<h2>{e(section.title)}</h2>\n')
        if section.description:
            parts.append(f'<p class="note">{e(section.description)}</p>\n')
        if section.chart and section.chart in charts:
            data = base64.b64encode(charts[section.chart]).decode()
            parts.append(f'<img alt="{e(section.title)}" src="data:image/png;base64,{data}">\n')
        table = ["<table>\n<tr>" + "".join(f"<th>{e(cell)}</th>" for cell in section.header) + "</tr>\n"]
        table += ["<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>\n" for row in section.rows]
        table.append("</table>\n")
        if section.compact:
            table = ["<details><summary>" + e(section.title) + "</summary>\n", *table, "</details>\n"]
        parts += table
        if section.note:
            parts.append(f'<p class="note">{e(section.note)}</p>\n')
        if section.key in csv_names:
            parts.append(f'<p class="note"><a href="{e(csv_names[section.key])}">CSV</a></p>\n')
        parts.append("</section>\n")
    parts.append(f'<p class="note">{e(document.footnote)}</p>\n</body>\n</html>\n')
    return "".join(parts).encode()


# -- all of a report's files --------------------------------------------------------------------


def write(
    document: Document, charts: dict[str, bytes], out: Path, structure_id: str, month: str, formats: tuple[str, ...]
) -> list[Path]:
    written: list[Path] = []
    csv_names = {section.key: f"{month}-{section.key}.csv" for section in document.sections} if "csv" in formats else {}
    with Directory.open(out, directory_name(structure_id)) as directory:
        if "csv" in formats:
            for section in document.sections:
                directory.write(csv_names[section.key], csv_bytes(section))
                written.append(directory / csv_names[section.key])
        if "html" in formats:
            directory.write(f"{month}.html", html_bytes(document, charts, csv_names))
            written.append(directory / f"{month}.html")
        if "pdf" in formats:  # last: its presence says the report is complete (see ent_exporter.reports.job)
            directory.write(f"{month}.pdf", pdf_bytes(document, charts))
            written.append(directory / f"{month}.pdf")
    return written
