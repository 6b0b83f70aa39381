"""docs/protocol.md: the table of contents lists every numbered section, in order."""

from __future__ import annotations

import pathlib
import re

DOC_PATH = pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_contents_list_every_section_in_order() -> None:
    doc = DOC_PATH.read_text(encoding="utf-8")
    contents = doc[doc.index("Contents:") : doc.index("\n---\n")]
    listed = re.findall(r"^\s*(\d+)\. \[([^\]]+)\]\(#([^)]+)\)", contents, re.M)
    sections = re.findall(r"^## (\d+)\. (.+)$", doc, re.M)
    assert [(n, t) for n, t, _ in listed] == sections
    for number, title, anchor in listed:
        assert anchor == _anchor(f"{number}. {title}"), f"section {number}: anchor #{anchor}"
