"""Rewrite the feature table in docs/features.md from the catalogue: ``python -m features.docs``."""

from __future__ import annotations

from pathlib import Path

from features.definitions import feature_table_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "features.md"
BEGIN, END = "<!-- features:begin -->\n", "\n<!-- features:end -->"


def render(text: str) -> str:
    """``text`` with the table between the markers replaced by the catalogue's."""
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + BEGIN + feature_table_markdown() + END + tail


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
    print(f"Rewrote the feature table in {DOC}.")
