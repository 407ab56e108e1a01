"""HTML from harness data: every value is escaped unless it is already `Html`.

The leaderboard page and the report show labels, axis values and configuration values that users
wrote. Escaping where text becomes markup, and only there, keeps a ``<`` in a label from ever
becoming a tag, and keeps markup the harness made from being escaped twice.
"""

from __future__ import annotations

import html

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f0f0f0; }
td { white-space: nowrap; }
details td { white-space: normal; overflow-wrap: anywhere; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
code { background: #f5f5f5; padding: 0 0.2em; }
details { margin: 0.3em 0; }
"""


class Html(str):
    """Text that is already markup: `escape` passes it through unchanged."""


def escape(value: object) -> Html:
    """`value` as HTML: markup as it is, anything else escaped (quotes too, so it may sit in an
    attribute)."""
    return (
        value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))
    )


def strong(text: str) -> Html:
    return Html(f"<strong>{escape(text)}</strong>")


def table(frame: pd.DataFrame) -> Html:
    """`frame` as a ``<table>``: a header row of its columns, then one row per row. Markup cells
    need an object column: pandas stores a column of text as plain strings, which are escaped."""
    header = "".join(f"<th>{escape(column)}</th>" for column in frame.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return Html(
        f"<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
    )


def page(title: str, body: Html) -> Html:
    """A whole document around `body`: its encoding declared (a browser opening the file from
    disk would otherwise misread ``±``) and its style inline, so the file needs nothing else."""
    return Html(
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n{escape(body)}\n</body>\n</html>\n"
    )
