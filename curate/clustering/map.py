"""A cluster map as one self-contained SVG: a dot per row (at most ``MAX_POINTS``) on the
plane of its embedding's two principal components, coloured by cluster, hollow when removed.
"""
from __future__ import annotations

from html import escape

import numpy as np

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#393b79", "#637939", "#ad494a"]
OTHER = "#b0b0b0"
MAX_POINTS = 2000
WIDTH, HEIGHT, PAD = 720, 440, 16


def colour(cluster: int) -> str:
    return PALETTE[cluster] if 0 <= cluster < len(PALETTE) else OTHER


def cluster_map_svg(xy: np.ndarray, labels: np.ndarray, names: dict[int, str],
                    kept: np.ndarray | None = None, seed: int = 0, named: int = 8) -> str:
    """The map of ``xy`` (n x 2) with cluster ``labels``; ``kept`` marks the kept rows."""
    n = len(xy)
    kept = np.ones(n, dtype=bool) if kept is None else np.asarray(kept, dtype=bool)
    shown = np.arange(n) if n <= MAX_POINTS else \
        np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))
    lo, hi = (xy.min(axis=0), xy.max(axis=0)) if n else (np.zeros(2), np.ones(2))
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = PAD + (xy - lo) / span * [WIDTH - 2 * PAD, HEIGHT - 2 * PAD]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="cluster-map" width="100%" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="cluster map">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff" stroke="#ddd"/>']
    for i in shown:
        x, y, c = scaled[i, 0], HEIGHT - scaled[i, 1], colour(int(labels[i]))
        style = f'fill="{c}"' if kept[i] else f'fill="none" stroke="{c}"'
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" {style} fill-opacity=".75" '
                     f'data-cluster="{int(labels[i])}"/>')
    for c in [c for c in sorted(set(map(int, labels))) if c >= 0][:named]:
        middle = np.median(scaled[labels == c], axis=0)
        name = names.get(c, str(c))
        half = 3.3 * len(name) + 4  # about half the label's width at 12 px: keep it inside
        x = min(max(middle[0], half), WIDTH - half)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - middle[1]:.1f}" font-size="12" '
                     f'font-family="sans-serif" text-anchor="middle" stroke="#fff" '
                     f'stroke-width="3" paint-order="stroke" fill="{colour(c)}" '
                     f'class="map-name">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
