"""Small inline SVG charts, so the report is one self-contained file that opens offline."""

from __future__ import annotations

from html import escape

__all__ = ["BAR_COLOR", "BAND_COLOR", "LINE_COLORS", "bar_chart", "line_chart"]

BAR_COLOR = "#2563eb"
BAND_COLOR = "#bbf7d0"
LINE_COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#be185d")
FONT = 'font-family="DejaVu Sans, Arial, sans-serif" font-size="12"'


def bar_chart(items: list[tuple[str, float | None]], *, maximum: float, unit: str = "",
              band: tuple[float, float] | None = None, width: int = 640, title: str = "") -> str:
    """Horizontal bars, one per label; `band` shades the recommended range."""
    label_width, row, top = 190, 26, 28
    plot = width - label_width - 70
    height = top + row * max(len(items), 1) + 24
    scale = plot / maximum if maximum else 0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" class="chart">',
             f'<text x="0" y="16" {FONT} font-weight="bold">{escape(title)}</text>']
    if band:
        x = label_width + band[0] * scale
        parts.append(f'<rect x="{x:.1f}" y="{top - 4}" width="{(band[1] - band[0]) * scale:.1f}" '
                     f'height="{row * len(items) + 4}" fill="{BAND_COLOR}"/>')
    for index, (label, value) in enumerate(items):
        y = top + index * row
        parts.append(f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end" {FONT}>{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{label_width + 4}" y="{y + 15}" {FONT} fill="#6b7280">нет данных</text>')
            continue
        length = max(value * scale, 1.0)
        parts.append(f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" '
                     f'fill="{BAR_COLOR}" rx="2"/>')
        parts.append(f'<text x="{label_width + length + 6:.1f}" y="{y + 15}" {FONT}>{value:g}{escape(unit)}</text>')
    axis_y = top + row * len(items) + 2
    parts.append(f'<line x1="{label_width}" y1="{axis_y}" x2="{label_width + plot}" y2="{axis_y}" stroke="#9ca3af"/>')
    parts.append(f'<text x="{label_width + plot}" y="{axis_y + 16}" text-anchor="end" {FONT} fill="#6b7280">'
                 f'{maximum:g}{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(series: dict[str, list[tuple[str, float]]], *, maximum: float = 100.0, width: int = 640,
               height: int = 260, title: str = "") -> str:
    """One line per series over the union of their x labels (dates), y from 0 to `maximum`."""
    labels = sorted({x for points in series.values() for x, _ in points})
    left, right, top, bottom = 40, 150, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}" class="chart">',
             f'<text x="0" y="16" {FONT} font-weight="bold">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#9ca3af"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#9ca3af"/>']
    for tick in (0, maximum / 2, maximum):
        y = top + plot_h - tick / maximum * plot_h
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT} fill="#6b7280">{tick:g}</text>')

    def x_of(label: str) -> float:
        return left + (plot_w * labels.index(label) / (len(labels) - 1) if len(labels) > 1 else plot_w / 2)

    for label in (labels[:: max(1, len(labels) // 6)] if labels else []):
        parts.append(f'<text x="{x_of(label):.1f}" y="{top + plot_h + 16}" text-anchor="middle" {FONT} '
                     f'fill="#6b7280">{escape(label[5:])}</text>')
    for index, (name, points) in enumerate(series.items()):
        color = LINE_COLORS[index % len(LINE_COLORS)]
        coordinates = [(x_of(x), top + plot_h - min(y, maximum) / maximum * plot_h) for x, y in sorted(points)]
        if len(coordinates) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        for x, y in coordinates:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color}"/>')
        legend_y = top + 14 + index * 18
        parts.append(f'<rect x="{left + plot_w + 14}" y="{legend_y - 9}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{left + plot_w + 30}" y="{legend_y}" {FONT}>{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
