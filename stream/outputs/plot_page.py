"""`screentime plot --html`: the timeline picture, the totals and the segments on one page.

Self-contained (the PNG inline as base64, the style inline, no script, nothing fetched), so it
can be mailed, archived or opened offline and looks the same in ten years.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from stream.outputs.clock import clock, length
from stream.outputs.plot_lanes import Section, class_colours, lanes

MAX_LISTED_SEGMENTS = 5000  # per source; a week of a busy camera has more, and the report has them all

STYLE = """
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
"""


def page(sections: Sequence[Section], picture: bytes, title: str = "screen time") -> str:
    encoded = base64.b64encode(picture).decode("ascii")
    blocks = "\n".join(_block(s) for s in sections)
    return (
        f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>Screen time · {escape(title)}</h1>\n"
        f'<img alt="who was on screen when" src="data:image/png;base64,{encoded}">\n{blocks}\n</body>\n</html>\n'
    )


def _block(section: Section) -> str:
    origin = float(section.get("start_s") or 0.0)
    duration = float(section["duration_s"])
    colours = class_colours(section)
    rows = []
    for name in lanes(section):
        seconds = float(section["screen_time_s"].get(name, 0.0))
        count = sum(1 for s in section["segments"] if name in str(s["class"]).split("+"))
        share = f"{seconds / duration:.1%}" if duration > 0 else "-"
        swatch = f'<span class="swatch" style="background:{colours.get(name, "#000")}"></span>'
        label = escape(name) + (" (background)" if name == section.get("background") else "")
        rows.append(f"<tr><td>{swatch}{label}</td><td>{seconds:.1f}</td><td>{share}</td><td>{count}</td></tr>")
    totals = (
        "<table><tr><th>class</th><th>seconds</th><th>share</th><th>segments</th></tr>" + "".join(rows) + "</table>"
    )
    segments = section["segments"]
    listed = segments[:MAX_LISTED_SEGMENTS]
    segment_rows = "".join(
        f"<tr><td>{escape(str(s['class']))}</td><td>{clock(s['start_s'] - origin)}</td>"
        f"<td>{clock(s['end_s'] - origin)}</td><td>{s['end_s'] - s['start_s']:.1f}</td></tr>"
        for s in listed
    )
    more = f"<p>... and {len(segments) - len(listed)} more in the report.</p>" if len(segments) > len(listed) else ""
    outage_rows = "".join(
        f"<tr><td>outage</td><td>{clock(o['start_s'] - origin)}</td><td>{clock(o['end_s'] - origin)}</td>"
        f"<td>{o['end_s'] - o['start_s']:.1f}</td></tr>"
        for o in section.get("outages") or []
    )
    head = "<tr><th>{}</th><th>from</th><th>to</th><th>seconds</th></tr>"
    outage_table = f"<h3>Outages</h3><table>{head.format('')}{outage_rows}</table>" if outage_rows else ""
    ended = escape(str(section.get("ended", "")))
    facts = (
        f"{length(duration)} analysed, {section.get('samples', 0)} samples, ended: {ended}."
        " Times are from the first sample" + (f" (start_s {origin:g} in the report)." if origin else ".")
    )
    return (
        f"<section>\n<h2>{escape(str(section.get('source', '')))}</h2>\n<p>{facts}</p>\n{totals}\n{outage_table}\n"
        f"<details><summary>Segments ({len(segments)})</summary><table>{head.format('class')}{segment_rows}</table>"
        f"{more}</details>\n</section>"
    )
