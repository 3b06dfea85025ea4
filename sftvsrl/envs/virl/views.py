"""The geometry of a V-IRL observation: four views (front, left / right, back) in a 2x2 grid.

Its own module so that the synthetic renderer (``render``) and the panorama cropper of the
original data (``loader``) share it without importing each other.
"""

from __future__ import annotations

VIEW_W, VIEW_H = 224, 160
# Label and bearing offset from the heading of each view, in grid order (row-major).
VIEW_OFFSETS = (("front", 0.0), ("left", -90.0), ("right", 90.0), ("back", 180.0))
GRID_SHAPE = (2 * VIEW_H, 2 * VIEW_W, 3)


def grid_position(index: int) -> tuple[int, int]:
    """Top-left pixel of view ``index`` in the grid."""
    return (index % 2) * VIEW_W, (index // 2) * VIEW_H
