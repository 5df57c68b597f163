"""Rewrite the feature table in docs/features.md from the catalogue: ``python -m features.docs``."""

from __future__ import annotations

from pathlib import Path

from features.definitions import FEATURES

DOC = Path(__file__).resolve().parents[1] / "docs" / "features.md"
BEGIN, END = "<!-- features:begin -->\n", "\n<!-- features:end -->"


def replace_between(text: str, begin: str, end: str, body: str) -> str:
    """``text`` with what stands between the ``begin`` and ``end`` markers replaced by ``body``."""
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + body + end + tail


def feature_table_markdown() -> str:
    """The catalogue as the Markdown table in docs/features.md."""
    rows = ["| name | definition | window | unit | needs |", "|---|---|---|---|---|"]
    for f in FEATURES:
        rows.append(f"| `{f.name}` | {f.definition} | {f.window} | {f.unit} | {', '.join(f.requires) or '-'} |")
    return "\n".join(rows)


def render(text: str) -> str:
    """``text`` with the table between the markers replaced by the catalogue's."""
    return replace_between(text, BEGIN, END, feature_table_markdown())


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
    print(f"Rewrote the feature table in {DOC}.")
