"""Draw a GeneralPoints hand: four playing cards on a green table (the -VL observation).

Pillow's built-in font has no suit symbols, so the DejaVu Sans fonts that matplotlib ships
are used (found through ``matplotlib.get_data_path()``, no network, no font cache build).
Spades and clubs are drawn in black ink, hearts and diamonds in red; the colour variant of
the environment decides which suits a hand shows (see ``cards.color_suits``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sftvsrl.envs.generalpoints.cards import parse_card

TABLE_RGB = (0x35, 0x65, 0x4D)
CARD_RGB = (250, 250, 246)
EDGE_RGB = (70, 70, 70)
BLACK_INK = (20, 20, 20)
RED_INK = (200, 16, 32)
SUIT_GLYPHS = {"S": "\u2660", "H": "\u2665", "D": "\u2666", "C": "\u2663"}
DEFAULT_SIZE = (448, 224)  # (width, height)


def ink(suit: str) -> tuple[int, int, int]:
    return RED_INK if suit in ("H", "D") else BLACK_INK


@cache
def _font_path(bold: bool) -> str:
    import matplotlib  # light: no pyplot, no backend

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)
    if not os.path.exists(path):  # an unusual matplotlib install: ask its font manager
        from matplotlib import font_manager

        path = font_manager.findfont(
            font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal")
        )
    return path


@cache
def _font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(_font_path(bold), size)


def _centered(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font, fill) -> None:
    draw.text(xy, text, font=font, fill=fill, anchor="mm")


def render_hand(cards: Sequence[str], size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """An ``H x W x 3`` uint8 image of the cards (names with suits, e.g. "KH"), left to right."""
    width, height = size
    if width < 64 or height < 48:
        raise ValueError(f"image size {size} is too small to draw cards on")
    img = Image.new("RGB", (width, height), TABLE_RGB)
    draw = ImageDraw.Draw(img)
    n = max(len(cards), 1)
    gap = width * 0.04
    card_w = min((width - gap * (n + 1)) / n, height * 0.85 / 1.4)
    card_h = card_w * 1.4
    x0 = (width - (card_w * n + gap * (n - 1))) / 2
    y0 = (height - card_h) / 2
    big, small = _font(int(card_h * 0.30)), _font(int(card_h * 0.14))
    for i, name in enumerate(cards):
        rank, suit = parse_card(name)
        suit = suit or "S"
        color = ink(suit)
        left = x0 + i * (card_w + gap)
        box = (left, y0, left + card_w, y0 + card_h)
        draw.rounded_rectangle(box, radius=card_w * 0.08, fill=CARD_RGB, outline=EDGE_RGB, width=2)
        # Corner index (as on real cards), then a large rank over a large suit in the middle.
        _centered(draw, (left + card_w * 0.17, y0 + card_h * 0.10), rank, small, color)
        _centered(draw, (left + card_w * 0.17, y0 + card_h * 0.22), SUIT_GLYPHS[suit], small, color)
        _centered(draw, (left + card_w * 0.55, y0 + card_h * 0.42), rank, big, color)
        _centered(draw, (left + card_w * 0.55, y0 + card_h * 0.74), SUIT_GLYPHS[suit], big, color)
    return np.asarray(img, dtype=np.uint8).copy()


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    Image.fromarray(image).save(path, format="PNG")
