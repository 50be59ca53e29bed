"""A rich table of screen time, predicted beside true where the truth is known."""

from __future__ import annotations

from rich.table import Table


def screen_time_table(
    predicted: dict[str, float],
    true: dict[str, float] | None = None,
    title: str = "screen time",
    interval: dict[str, tuple[float, float]] | None = None,
    audit: dict | None = None,
) -> Table:
    """`interval`: per class, (low, high) seconds of the 90% interval (stream.confidence.interval), valid for
    footage like the training frames; `audit`: the report's audit record (stream.confidence.audit), whose
    estimate and interval hold on this video."""
    table = Table(title=title)
    table.add_column("class")
    table.add_column("predicted s", justify="right")
    if interval:
        table.add_column("90% interval s", justify="right")
    if audit:
        table.add_column(f"audited s (n={audit['n']})", justify="right")
        table.add_column(f"{audit.get('level', 0.9):.0%} audit interval s", justify="right")
    if true is not None:
        table.add_column("true s", justify="right")
        table.add_column("error s", justify="right")
    for name, seconds in predicted.items():
        row = [name, f"{seconds:.1f}"]
        if interval:
            low, high = interval.get(name, (float("nan"), float("nan")))
            row.append(f"{low:.1f}-{high:.1f}")
        if audit:
            row += audit_cells(audit, name)
        if true is not None:
            row += [f"{true.get(name, 0.0):.1f}", f"{seconds - true.get(name, 0.0):+.1f}"]
        table.add_row(*row)
    return table


def audit_cells(audit: dict, name: str) -> list[str]:
    """The audited estimate and interval of one class, as table cells."""
    if name not in audit.get("estimate_s", {}):
        return ["", ""]
    low, high = audit["interval_s"][name]
    return [f"{audit['estimate_s'][name]:.1f}", f"{low:.1f}-{high:.1f}"]
