"""Draw a V-IRL route on its street map (matplotlib) and save one -VL observation.

    python scripts/render_virl_route.py --city helsinki --seed 3 \
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--city", default="helsinki", choices=["helsinki", "kotka"])
    parser.add_argument("--split", default="train")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", default="docs/img/virl_route.png")
    parser.add_argument("--vl-out", default="", help="also save the -VL view grid at the route's start")
    args = parser.parse_args()

    street_map = load_city(args.city)
    route = sample_route(street_map, args.split, args.seed)
    lat0, lon0 = street_map.lats[0], street_map.lons[0]

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return local_xy(lat, lon, lat0, lon0)

    fig, ax = plt.subplots(figsize=(9, 9.5))
    for edge in street_map.edges:
        pts = [xy(*c) for c in edge.coords]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#b8b8b8", lw=1.0, zorder=1)
    places = [xy(p.lat, p.lon) for p in street_map.places]
    ax.scatter(
        [p[0] for p in places], [p[1] for p in places], s=3, color="#9ab", zorder=2, label="named places"
    )
    # The route: walk the graph path so the line follows the streets.
    route_xy = [xy(*p) for p in route.points]
    for a, b in zip(route.points, route.points[1:], strict=False):
        for edge in street_map.edges:
            ends = (edge.coords[0], edge.coords[-1])
            if ends in ((a, b), (b, a)):
                coords = edge.coords if ends == (a, b) else edge.coords[::-1]
                pts = [xy(*c) for c in coords]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color="#d62728", lw=3, zorder=3)
                break
    ax.scatter(*route_xy[0], s=120, marker="o", color="#2ca02c", zorder=5, label="start")
    ax.scatter(*route_xy[-1], s=160, marker="*", color="#d62728", zorder=5, label="goal")
    for i, (px, py) in enumerate(route_xy[1:-1], start=1):
        ax.scatter(px, py, s=30, color="#d62728", zorder=4)
        ax.annotate(str(i), (px, py), textcoords="offset points", xytext=(5, 5), fontsize=8)
    hx, hy = route_xy[0]
    h = math.radians(route.start_heading)
    ax.annotate("", (hx + 60 * math.sin(h), hy + 60 * math.cos(h)), (hx, hy),
                arrowprops={"arrowstyle": "->", "color": "#2ca02c", "lw": 2})  # fmt: skip
    for group in route.landmarks:
        for lm in group[:1]:
            lx, ly = xy(lm.lat, lm.lon)
            ax.scatter(lx, ly, s=25, marker="s", color="#1f77b4", zorder=4)
            ax.annotate(
                lm.name, (lx, ly), textcoords="offset points", xytext=(4, -10), fontsize=7, color="#1f77b4"
            )
    ax.set_aspect("equal")
    ax.set_xlabel("metres east")
    ax.set_ylabel("metres north")
    ax.legend(loc="upper left", fontsize=8)
    wrapped = "\n".join(textwrap.wrap(route.instruction, 110))
    ax.set_title(f"{route.route_id} ({route.length_m:.0f} m, {len(route.streets)} decision points)\n{wrapped}",
                 fontsize=8, loc="left")  # fmt: skip
    fig.text(0.99, 0.005, "Map data © OpenStreetMap contributors, ODbL", ha="right", fontsize=7, color="#555")
    fig.tight_layout()
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
