"""Chart geometry for the dashboard, computed here and drawn by the templates as SVG or
as CSS bar widths — no JavaScript, nothing to build."""

from __future__ import annotations

from typing import Any

SERIES_WIDTH, SERIES_HEIGHT = 600, 160


def funnel(totals: dict[str, Any]) -> list[dict[str, Any]]:
    """Issued (or delivered) → clicked → converted, each a bar as wide as its share of the
    first step."""
    first = totals["base"]
    steps = [
        ("Delivered" if totals["ctr_base"] == "delivered" else "Issued", first, None),
        ("Clicked", totals["unique_clickers"], totals["ctr"]),
        ("Converted", totals["converters"], totals["conversion_rate"]),
    ]
    return [
        {"label": label, "count": count, "rate": rate, "width": _share(count, first)}
        for label, count, rate in steps
    ]


def split(parts: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Bars for parts of a whole (human vs bot clicks, devices)."""
    total = sum(n for _, n in parts)
    return [
        {"label": label, "count": n, "share": n / total if total else None,
         "width": _share(n, total)}
        for label, n in parts
    ]  # fmt: skip


def series(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars per bucket: human clicks stacked on bot clicks, conversions as a line, each
    scaled to its own maximum (the two differ by orders of magnitude)."""
    if not points:
        return {"bars": [], "line": "", "width": SERIES_WIDTH, "height": SERIES_HEIGHT}
    step = SERIES_WIDTH / len(points)
    top_clicks = max(p["human_clicks"] + p["bot_clicks"] for p in points) or 1
    top_conversions = max(p["conversions"] for p in points) or 1
    usable = SERIES_HEIGHT - 10
    bars, line = [], []
    for i, p in enumerate(points):
        human = usable * p["human_clicks"] / top_clicks
        bot = usable * p["bot_clicks"] / top_clicks
        x = i * step + step * 0.1
        bars.append(
            {
                "x": round(x, 2),
                "width": round(step * 0.8, 2),
                "human_y": round(SERIES_HEIGHT - human, 2),
                "human_height": round(human, 2),
                "bot_y": round(SERIES_HEIGHT - human - bot, 2),
                "bot_height": round(bot, 2),
                "title": f"{p['start']}: {p['human_clicks']} human, {p['bot_clicks']} bot,"
                f" {p['conversions']} conversions",
            }
        )
        y = SERIES_HEIGHT - usable * p["conversions"] / top_conversions
        line.append(f"{round(i * step + step / 2, 2)},{round(y, 2)}")
    return {
        "bars": bars, "line": " ".join(line), "width": SERIES_WIDTH, "height": SERIES_HEIGHT,
        "first": points[0]["start"], "last": points[-1]["start"],
        "top_clicks": top_clicks, "top_conversions": top_conversions,
    }  # fmt: skip


def _share(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0
