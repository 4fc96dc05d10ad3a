"""A line chart of metrics over rounds, drawn as inline SVG on the server.

Hand-written rather than a JavaScript chart library: a few polylines and axis labels are all the
page needs, and server-side SVG shows without JavaScript, prints, and is readable by screen readers
through its title, description and the data table the page puts beside it.
"""

from __future__ import annotations

from html import escape

from federation.web.reading import MetricSeries

__all__ = ["line_chart"]

COLOURS = ("#1b7f5b", "#c2571a", "#3b5bdb", "#a61e4d")


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + step * index for index in range(count)]


def line_chart(
    series: list[MetricSeries], *, title: str, width: int = 640, height: int = 260, x_label: str = "round"
) -> str:
    """SVG markup for ``series`` (empty string when there is nothing to draw)."""
    points = [point for line in series for point in line.points]
    if not points:
        return ""
    left, right, top, bottom = 48, 150, 16, 36
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = 0.0, max(max(ys), 1e-9) * 1.1
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (plot_w / 2 if x_high == x_low else (x - x_low) / (x_high - x_low) * plot_w)

    def sy(y: float) -> float:
        return top + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    parts = [
        '<svg class="chart" role="img" aria-labelledby="chart-title chart-desc"'
        f' viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(", ".join(line.name for line in series))} by {x_label}</desc>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="axis"/>',
    ]
    digits = 2 if y_high >= 0.2 else 3 if y_high >= 0.02 else 4  # enough that ticks read apart
    for tick in _ticks(y_low, y_high):
        y = sy(tick)
        parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:.{digits}f}</text>')
    x_ticks = sorted(set(xs))
    stride = max(1, len(x_ticks) // 10)
    for tick in x_ticks[::stride]:
        x = sx(tick)
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{tick:g}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" class="label">'
        f"{escape(x_label)}</text>"
    )
    for index, line in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line.points)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in line.points:
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(line.name)} {x_label} {x:g}: {y:.4f}</title></circle>"
            )
        legend_y = top + 14 + index * 18
        parts.append(
            f'<rect x="{left + plot_w + 12}" y="{legend_y - 9}" width="12" height="3" fill="{colour}"/>'
        )
        parts.append(f'<text x="{left + plot_w + 30}" y="{legend_y - 4}">{escape(line.name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
