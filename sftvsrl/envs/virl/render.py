"""-VL observations: a 2x2 grid of views around the walker (front, left / right, back).

Each view is a simple synthetic street scene: sky, ground, the street ahead when one leaves
in that direction (with a street-name sign), and every named place in that direction drawn
as a facade with a symbol badge and its name on a signboard. Nearer places are drawn larger.
Two styles, so that the held-out city also shifts the pixels (visual OOD):

    day   (Helsinki, training): pale blue sky, grey road, pastel facades, blue street signs,
          dark text on white signboards.
    dusk  (Kotka and any other city): dark violet-orange sky, dark road, saturated facades,
          green street signs, light text on dark signboards, a different font size.

Routes from the original V-IRL data are rendered from their panoramas instead (loader.py).
"""

from __future__ import annotations

import colorsys
import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sftvsrl.envs.virl.directions import signed_turn
from sftvsrl.envs.virl.osm import distance_m
from sftvsrl.envs.virl.routes import Route, side_of
from sftvsrl.envs.virl.views import VIEW_H, VIEW_OFFSETS, VIEW_W, grid_position

STYLES = {
    "day": {
        "sky": ((150, 200, 240), (215, 235, 250)),
        "ground": (170, 170, 160),
        "road": (95, 95, 100),
        "line": (245, 245, 245),
        "sign_bg": (30, 80, 170),
        "sign_fg": (255, 255, 255),
        "board_bg": (250, 250, 245),
        "board_fg": (20, 20, 20),
        "label": (20, 20, 20),
        "facade_sat": 0.25,
        "facade_val": 0.9,
        "font": 12,
    },
    "dusk": {
        "sky": ((40, 30, 80), (230, 120, 70)),
        "ground": (60, 55, 60),
        "road": (35, 35, 40),
        "line": (230, 200, 60),
        "sign_bg": (20, 110, 60),
        "sign_fg": (255, 255, 230),
        "board_bg": (30, 30, 35),
        "board_fg": (255, 230, 150),
        "label": (255, 255, 255),
        "facade_sat": 0.65,
        "facade_val": 0.6,
        "font": 11,
    },
}
SYMBOLS = {
    "hotel": "★", "hostel": "★", "guest house": "★", "cafe": "☕", "restaurant": "R", "fast food": "F",
    "pub": "B", "bar": "B", "nightclub": "♫", "theatre": "♫", "cinema": "♫", "pharmacy": "✚",
    "clinic": "✚", "doctors": "✚", "dentist": "✚", "hospital": "✚", "place of worship": "✝",
    "bank": "€", "bureau de change": "€", "museum": "M", "gallery": "M", "artwork": "A",
    "memorial": "◆", "library": "L", "school": "S", "fuel": "⛽",
}  # fmt: skip


def style_for_city(city: str) -> str:
    """The training city is drawn in the day style; every other city in dusk."""
    return "day" if city == "helsinki" else "dusk"


@lru_cache(maxsize=8)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    spec = importlib.util.find_spec("matplotlib")
    if spec and spec.origin:
        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / name
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def _symbol(kind: str) -> str:
    if kind.endswith("shop"):
        return "$"
    return SYMBOLS.get(kind, kind[:1].upper() or "?")


def _facade_colour(name: str, style: dict) -> tuple[int, int, int]:
    hue = int(hashlib.md5(name.encode()).hexdigest()[:4], 16) / 65535.0
    r, g, b = colorsys.hsv_to_rgb(hue, style["facade_sat"], style["facade_val"])
    return int(r * 255), int(g * 255), int(b * 255)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap; words wider than a line are split; the last line is ellipsised."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        while draw.textlength(word, font=font) > width and len(word) > 1:
            cut = len(word)
            while cut > 1 and draw.textlength(word[:cut], font=font) > width:
                cut -= 1
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{current} {word}".strip()
        if draw.textlength(candidate, font=font) <= width:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [_fit(draw, " ".join(lines[max_lines - 1 :]), font, width)]
    return lines or [""]


def _branches(route: Route, point: int) -> list[tuple[float, str]]:
    """(bearing, street name) of every street leaving ``point``."""
    if route.branches:
        return route.branches[point]
    out = []
    if point < len(route.streets):
        out.append((route.depart[point], route.streets[point]))
    if point > 0:
        out.append(((route.arrive[point - 1] + 180.0) % 360.0, route.streets[point - 1]))
    return out


def _view(
    route: Route, point: int, view_heading: float, walker_heading: float, label: str, style: dict
) -> Image.Image:
    img = Image.new("RGB", (VIEW_W, VIEW_H), style["ground"])
    draw = ImageDraw.Draw(img)
    horizon = VIEW_H * 9 // 20
    top, bottom = style["sky"]
    for y in range(horizon):
        t = y / max(1, horizon - 1)
        draw.line(
            [(0, y), (VIEW_W, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=False))
        )
    font = _font(style["font"])
    bold = _font(style["font"] + 1, bold=True)
    origin = route.points[point]
    # Streets leaving this intersection within 40 degrees of the view direction.
    for bearing, name in _branches(route, point):
        d = signed_turn(view_heading, bearing)
        if abs(d) <= 40.0:
            cx = VIEW_W / 2 + d / 40.0 * VIEW_W * 0.35
            draw.polygon(
                [(cx - 8, horizon), (cx + 8, horizon), (cx + 70, VIEW_H), (cx - 70, VIEW_H)],
                fill=style["road"],
            )
            draw.line([(cx, horizon + 4), (cx, VIEW_H)], fill=style["line"], width=2)
            text = _fit(draw, name, font, VIEW_W - 20)
            w = int(draw.textlength(text, font=font)) + 10
            x0 = int(max(4, min(VIEW_W - w - 4, cx - w / 2)))
            y0 = horizon + 10
            draw.rectangle([x0, y0, x0 + w, y0 + style["font"] + 6], fill=style["sign_bg"])
            draw.text((x0 + 5, y0 + 2), text, fill=style["sign_fg"], font=font)
    # Places in this view: the walker's side classification picks the view.
    places = []
    side_name = label.lower()
    for lm in route.landmarks[point]:
        if side_of(walker_heading, origin, (lm.lat, lm.lon)) == side_name:
            places.append((distance_m(origin, (lm.lat, lm.lon)), lm))
    places.sort(key=lambda x: x[0])
    slots = max(1, len(places))
    slot_w = (VIEW_W - 8) // slots
    line_h = style["font"] + 2
    for j, (dist, lm) in enumerate(places):
        x0 = 4 + j * slot_w + 2
        x1 = x0 + slot_w - 4
        lines = _wrap(draw, lm.name, font, x1 - x0 - 8, max_lines=3)
        board_h = 4 + line_h * (len(lines) + 2)
        scale = 1.0 - min(dist, 60.0) / 120.0  # nearer places stand taller
        y1 = horizon + 8
        y0 = max(2, y1 - max(board_h + 18, int(horizon * 0.95 * scale) + 20))
        draw.rectangle([x0, y0, x1, y1], fill=_facade_colour(lm.name, style), outline=(0, 0, 0))
        for wy in range(y0 + board_h + 6, y1 - 12, 16):  # windows
            for wx in range(x0 + 6, x1 - 10, 14):
                draw.rectangle([wx, wy, wx + 7, wy + 8], fill=style["board_bg"])
        draw.rectangle([x0 + 2, y0 + 2, x1 - 2, y0 + board_h], fill=style["board_bg"])
        draw.text((x0 + 5, y0 + 3), _symbol(lm.kind), fill=style["board_fg"], font=bold)
        kind = _fit(draw, lm.kind, font, x1 - x0 - 28)
        draw.text((x0 + 22, y0 + 3), kind, fill=style["board_fg"], font=font)
        for n, line in enumerate(lines, start=1):
            draw.text((x0 + 5, y0 + 3 + n * line_h), line, fill=style["board_fg"], font=font)
    draw.text((4, VIEW_H - style["font"] - 5), label.upper(), fill=style["label"], font=bold)
    draw.rectangle([0, 0, VIEW_W - 1, VIEW_H - 1], outline=(0, 0, 0))
    return img


def render_views(route: Route, point: int, heading: float, style: str | None = None) -> np.ndarray:
    """The 2x2 grid (front, left / right, back) as an HxWx3 uint8 array."""
    if route.panoramas is not None:
        from sftvsrl.envs.virl.loader import panorama_views

        return panorama_views(route, point, heading)
    palette = STYLES[style or style_for_city(route.city)]
    grid = Image.new("RGB", (2 * VIEW_W, 2 * VIEW_H))
    for index, (label, offset) in enumerate(VIEW_OFFSETS):
        view = _view(route, point, (heading + offset) % 360.0, heading, label, palette)
        grid.paste(view, grid_position(index))
    return np.asarray(grid, dtype=np.uint8)


def visible_landmarks(route: Route, point: int) -> list[str]:
    """Every place name drawn at ``point`` (all four views together)."""
    return [lm.name for lm in route.landmarks[point]]
