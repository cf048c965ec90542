"""MkDocs hooks (mkdocs.yml: ``hooks``).

BENCHMARKS.md lives at the repository's root, where its pictures are linked from (``docs/...``); the
site shows it as docs/benchmark-results.md, whose links are relative to docs/. The page's include line
is replaced by the file itself with those links made relative to docs/, so that the strict build checks
them as it checks every other link (the snippets extension would include the file as it is).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

INCLUDED = "BENCHMARKS.md"
INCLUDE = f'--8<-- "{INCLUDED}"'
ROOT_LINK = re.compile(r"(\]\()docs/")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if INCLUDE not in markdown:
        return markdown
    text = (Path(config.config_file_path).parent / INCLUDED).read_text(encoding="utf-8")
    return markdown.replace(INCLUDE, ROOT_LINK.sub(r"\1", text))
