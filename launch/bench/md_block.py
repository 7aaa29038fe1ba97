"""A benchmark's table in its markdown page: the text between `<!-- <marker>:begin -->` and
`<!-- <marker>:end -->` is replaced (the prose around it is kept); a page without the markers gets
the block appended."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_block"]


def write_block(md: Path, marker: str, text: str) -> None:
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    old = md.read_text() if md.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in old and end in old:
        md.write_text(old[: old.index(begin)] + block + old[old.index(end) + len(end):])
    else:
        md.write_text(old + ("\n" if old else "") + block + "\n")
