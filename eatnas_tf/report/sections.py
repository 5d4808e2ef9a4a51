"""Level-2 sections of a Markdown report, replaced in place: how a later phase (the export)
adds its part to `DIR/report.md` without rewriting what the search wrote.

    replace_section("runs/x/report.md", "## Export", body)
"""

from __future__ import annotations

from eatnas_tf.store import atomic


def replace_section(report_md: str, heading: str, section_body: str) -> None:
    """Replaces (or appends) the `heading` section of `report_md` with `section_body`.

    The section runs from its heading to the next level-2 heading or the end of the file.
    Running it twice with the same body leaves the file unchanged.
    """
    with open(report_md) as f:
        lines = f.read().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == heading), None)
    body = [heading, ""] + section_body.rstrip("\n").splitlines()
    if start is None:
        while lines and not lines[-1].strip():
            lines.pop()
        new = lines + ([""] if lines else []) + body
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")),
                   len(lines))
        tail = lines[end:]
        new = lines[:start] + body + ([""] + tail if tail else [])
    atomic.write_text(report_md, "\n".join(new) + "\n")
