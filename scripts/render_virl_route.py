"""Draw a V-IRL route on its street map (matplotlib) and save one -VL observation.

    python scripts/render_virl_route.py --city helsinki --seed 14 \
        --out docs/img/virl_route.png --vl-out docs/img/virl_vl_obs.png

Map data (c) OpenStreetMap contributors, ODbL.
"""

from __future__ import annotations

import argparse
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from sftvsrl.envs.virl.osm import load_city, local_xy  # noqa: E402
from sftvsrl.envs.virl.render import render_views  # noqa: E402
from sftvsrl.envs.virl.routes import sample_route  # noqa: E402

OFFSETS = [(6, 6), (6, -12), (-6, 6), (-6, -12), (10, -2), (-10, -2), (0, 12), (0, -16),
           (14, 14), (14, -20), (-14, 14), (-14, -20), (0, 24), (0, -28)]  # fmt: skip


def place_labels(
    fig: plt.Figure,
    ax: plt.Axes,
    labels: list[tuple[str, tuple[float, float], float, str]],
    avoid: list[tuple[float, float]] = (),
) -> None:
    """Annotate each point with the first offset (in points) whose text box overlaps no label
    placed before it nor a marker of ``avoid`` and stays inside the axes; a thin leader line
    joins labels placed far from their point."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    r = 5 * fig.dpi / 72  # a marker's half-size in pixels
    taken = [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in ax.transData.transform(avoid)]
    for text, point, size, color in labels:
        for k, (dx, dy) in enumerate(OFFSETS):
            ha = "left" if dx >= 0 else "right"
            note = ax.annotate(text, point, textcoords="offset points", xytext=(dx, dy), fontsize=size,
                               color=color, ha=ha, zorder=6,
                               bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75},
                               arrowprops={"arrowstyle": "-", "color": color, "lw": 0.5} if k >= 8 else None)  # fmt: skip
            box = note.get_window_extent(renderer).expanded(1.05, 1.1)
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(t) for t in taken):
                taken.append(box)
                break
            if k < len(OFFSETS) - 1:
                note.remove()
        else:
            taken.append(box)  # no free place: keep the last try


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--city", default="helsinki", choices=["helsinki", "kotka"])
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--out", default="docs/img/virl_route.png")
    parser.add_argument("--vl-out", default="", help="also save the -VL view grid at the route's start")
    args = parser.parse_args()

    street_map = load_city(args.city)
    route = sample_route(street_map, args.split, args.seed)
    lat0, lon0 = street_map.lats[0], street_map.lons[0]

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return local_xy(lat, lon, lat0, lon0)

    # The map around the route only (the whole city is mostly empty space at this scale).
    route_xy = [xy(*p) for p in route.points]
    marks = route_xy + [xy(lm.lat, lm.lon) for group in route.landmarks for lm in group[:1]]
    margin = 120.0
    x0, x1 = min(p[0] for p in marks) - margin, max(p[0] for p in marks) + margin
    y0, y1 = min(p[1] for p in marks) - margin, max(p[1] for p in marks) + margin
    # Widen the narrow side to a 4:5 shape at least: a strip of a map reads badly.
    if (x1 - x0) < 0.8 * (y1 - y0):
        pad = (0.8 * (y1 - y0) - (x1 - x0)) / 2
        x0, x1 = x0 - pad, x1 + pad
    elif (y1 - y0) < 0.6 * (x1 - x0):
        pad = (0.6 * (x1 - x0) - (y1 - y0)) / 2
        y0, y1 = y0 - pad, y1 + pad
    axes_w = 6.8  # inches; the figure's height follows the map's shape plus title and legend
    axes_h = min(7.0, max(2.5, axes_w * (y1 - y0) / (x1 - x0)))
    fig, ax = plt.subplots(figsize=(axes_w + 1.0, axes_h + 2.3))
    for edge in street_map.edges:
        pts = [xy(*c) for c in edge.coords]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#c8c8c8", lw=1.0, zorder=1)
    places = [xy(p.lat, p.lon) for p in street_map.places]
    ax.scatter(
        [p[0] for p in places], [p[1] for p in places], s=3, color="#aabbcc", zorder=2, label="named places"
    )
    # The route: walk the graph path so the line follows the streets.
    for a, b in zip(route.points, route.points[1:], strict=False):
        for edge in street_map.edges:
            ends = (edge.coords[0], edge.coords[-1])
            if ends in ((a, b), (b, a)):
                coords = edge.coords if ends == (a, b) else edge.coords[::-1]
                pts = [xy(*c) for c in coords]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#d62728", lw=3, zorder=3)
                break
    ax.scatter(*route_xy[0], s=120, marker="o", color="#2ca02c", zorder=5, label="start")
    ax.scatter(*route_xy[-1], s=200, marker="*", color="#d62728", zorder=5, label="goal")
    ax.scatter([], [], s=25, marker="s", color="#1f77b4", label="landmark")
    ax.scatter([], [], s=30, color="#d62728", label="decision point")
    hx, hy = route_xy[0]
    h = math.radians(route.start_heading)
    ax.annotate("", (hx + 60 * math.sin(h), hy + 60 * math.cos(h)), (hx, hy),
                arrowprops={"arrowstyle": "->", "color": "#2ca02c", "lw": 2})  # fmt: skip
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    labels = [(str(i), (px, py), 8, "black") for i, (px, py) in enumerate(route_xy[1:-1], start=1)]
    for px, py in route_xy[1:-1]:
        ax.scatter(px, py, s=30, color="#d62728", zorder=4)
    for group in route.landmarks:
        for lm in group[:1]:
            lx, ly = xy(lm.lat, lm.lon)
            ax.scatter(lx, ly, s=25, marker="s", color="#1f77b4", zorder=4)
            labels.append((lm.name, (lx, ly), 8, "#1f4f8f"))
    place_labels(fig, ax, labels, avoid=marks)
    ax.set_xlabel("metres east")
    ax.set_ylabel("metres north")
    handles, names = ax.get_legend_handles_labels()
    fig.legend(handles, names, loc="lower left", ncol=len(names), fontsize=8, frameon=False)
    wrapped = "\n".join(textwrap.wrap(route.instruction, 100))
    ax.set_title(f"{route.route_id} ({route.length_m:.0f} m, {len(route.streets)} decision points)\n{wrapped}",
                 fontsize=7.5, loc="left")  # fmt: skip
    fig.text(0.99, 0.04, "Map data © OpenStreetMap contributors, ODbL", ha="right", fontsize=7, color="#555")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")
    if args.vl_out:
        image = render_views(route, route.plan[0].point, route.plan[0].heading)
        Path(args.vl_out).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(args.vl_out)
        print(f"wrote {args.vl_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
