"""Rewrite the scored-row table in docs/serving.md from ``serving.schema``: ``python -m serving.docs``."""

from __future__ import annotations

from pathlib import Path

from features.docs import replace_between
from serving.schema import scored_columns_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
BEGIN, END = "<!-- scored:begin -->\n", "\n<!-- scored:end -->"


def render(text: str) -> str:
    """``text`` with the table between the markers replaced by the schema's."""
    return replace_between(text, BEGIN, END, scored_columns_markdown())


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
    print(f"Rewrote the scored-row table in {DOC}.")
