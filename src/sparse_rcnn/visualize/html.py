"""One static HTML page over a folder of PNGs: relative links, inline CSS, no script, opens from disk."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable, Optional, Sequence

STYLE = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1300px; color: #222; }
h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 14px; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 9px; text-align: right; } th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: 6px 0; }
.swatch { display: inline-block; width: 11px; height: 11px; margin-right: 6px; border: 1px solid #555; }
p.note { color: #555; font-size: 14px; max-width: 1000px; }
"""


def table(header: Sequence[str], rows: Iterable[Sequence[object]], *, raw_first: bool = False) -> str:
    """An HTML table; cells are escaped (the first column kept as given with ``raw_first``)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [c if (raw_first and i == 0) else html.escape(str(c)) for i, c in enumerate(row)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>\n" + "\n".join(body) + "</table>"


def swatch(color: str, text: str) -> str:
    return f'<span class="swatch" style="background:{html.escape(color)}"></span>{html.escape(text)}'


def figure(src: str, alt: str, note: Optional[str] = None) -> str:
    out = f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'
    return out + (f'<p class="note">{html.escape(note)}</p>' if note else "")


def write_page(path: Path, title: str, sections: Sequence[tuple[str, str]], intro: str = "") -> Path:
    """``sections``: (heading, HTML body) pairs, in order."""
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if intro:
        parts.append(f'<p class="note">{html.escape(intro)}</p>')
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{body}")
    parts.append("</body></html>\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
