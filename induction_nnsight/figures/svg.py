"""A layer x head heatmap as a standalone SVG: a picture for places that show no Plotly (the README).

Plain data in, SVG text out; the colour scale is Plotly's Viridis, as the interactive heatmap's.
"""

from __future__ import annotations

from html import escape

__all__ = ["heatmap_svg"]

_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def _colour(value: float, low: float, high: float) -> str:
    t = 0.0 if high <= low else min(max((value - low) / (high - low), 0.0), 1.0)
    i = min(int(t * (len(_VIRIDIS) - 1)), len(_VIRIDIS) - 2)
    f = t * (len(_VIRIDIS) - 1) - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(_VIRIDIS[i], _VIRIDIS[i + 1]))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap_svg(values: list[list[float]], title: str, cell: int = 14, low: float = 0.0, high: float = 1.0) -> str:
    """``values[layer][head]`` as an SVG with heads across and layers down (layer 0 at the top); ``title``
    may hold several lines.

    >>> svg = heatmap_svg([[0.0, 1.0]], "scores")
    >>> svg.count('width="14" height="14"'), "#440154" in svg, "#fde725" in svg
    (2, True, True)
    """
    n_layers, n_heads = len(values), len(values[0])
    lines = title.splitlines()
    left, top = 56, 20 + 16 * len(lines)
    width = max(left + n_heads * cell + 70, 16 + 7 * max(len(line) for line in lines))
    height = top + n_layers * cell + 34
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    parts += [f'<text x="8" y="{18 + 16 * i}" font-size="13">{escape(line)}</text>' for i, line in enumerate(lines)]
    for layer, row in enumerate(values):
        y = top + layer * cell
        if layer % 5 == 0:
            parts.append(f'<text x="{left - 6}" y="{y + cell - 3}" text-anchor="end">L{layer}</text>')
        for head, value in enumerate(row):
            fill = "#dddddd" if value is None else _colour(value, low, high)
            parts.append(f'<rect x="{left + head * cell}" y="{y}" width="{cell}" height="{cell}" fill="{fill}"/>')
    bottom = top + n_layers * cell
    for head in range(n_heads):
        parts.append(f'<text x="{left + head * cell + cell / 2}" y="{bottom + 14}" text-anchor="middle">{head}</text>')
    parts.append(f'<text x="{left + n_heads * cell / 2}" y="{bottom + 28}" text-anchor="middle">head</text>')
    bar = left + n_heads * cell + 16
    for i in range(20):
        y = top + (19 - i) * (n_layers * cell / 20)
        fill = _colour(low + (high - low) * (i + 0.5) / 20, low, high)
        parts.append(
            f'<rect x="{bar}" y="{y:.1f}" width="12" height="{n_layers * cell / 20 + 0.5:.1f}" fill="{fill}"/>'
        )
    parts.append(f'<text x="{bar + 16}" y="{top + 9}">{high:g}</text>')
    parts.append(f'<text x="{bar + 16}" y="{bottom}">{low:g}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
