"""Load routes in the original V-IRL / SFTvsRL data layout (``city="path:<dir>"``).

The original release (NYC routes, a GPS->panorama pickle, street-view JPEGs) cannot be
reached from here, so this module defines the layout it accepts, from what is known of it:

    <dir>/routes/*.json          one route per file (files read in name order)
    <dir>/gps_to_pano.pkl        pickle of a dict: GPS -> panorama
    <dir>/streetviews/<pano_id>.jpg   equirectangular 360-degree panorama JPEGs

Route file (JSON object)::

    {"route_id": "nyc_0001",                 optional, default: the file name without .json
     "instruction": "First, turn ...",       required, non-empty text
     "start_heading": 90.0,                  required, compass degrees (taken mod 360)
     "goal_landmark": "Joe's Pizza",         optional
     "points": [                             required, at least 2 key positions, start to goal
        {"lat": 40.73, "lon": -73.99,        required numbers
         "street": "Broadway",               required on every point but the last: the street
                                             walked from this point to the next
         "cross_streets": ["Broadway", "W 4th St"],      optional
         "landmarks": [{"name": "Joe's Pizza", "kind": "restaurant",
                        "lat": 40.73, "lon": -73.99}]}   optional, default []
     ]}

GPS->panorama pickle: a dict whose keys are ``(lat, lon)`` tuples or ``"lat,lon"`` strings
and whose values are ``{"pano_id": str, "heading": float}`` (heading = compass bearing of
the panorama's centre column) or a bare ``pano_id`` string (heading 0: north at the centre).
Each route point uses the nearest key within 25 m. The pickle comes from outside, so it is
read with an Unpickler that resolves no globals except ``set``, ``frozenset`` and
``collections.OrderedDict``: plain data only (dict, list, tuple, str, numbers, bool, None).
A pickle referring to anything else (``os.system``, numpy types, classes) is rejected before
anything runs. Convert numpy values to plain Python types before pickling.

Splits: ``all``, or ``train`` / ``test`` by SHA-1 of the route id (test when mod 100 < 20).
Views: four 90-degree crops (front, left, right, back) of the panorama, in the same 2x2 grid
as the rendered OSM views.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sftvsrl.config import ConfigError
from sftvsrl.envs.virl.osm import bearing_deg, distance_m
from sftvsrl.envs.virl.routes import TEST_PERCENT, Landmark, Route
from sftvsrl.envs.virl.safepickle import PICKLE_ERRORS, load_plain_pickle
from sftvsrl.envs.virl.views import GRID_SHAPE, VIEW_H, VIEW_OFFSETS, VIEW_W, grid_position

MAX_PICKLE_BYTES = 512 * 1024 * 1024
MAX_ROUTE_FILE_BYTES = 4 * 1024 * 1024
MAX_PANO_DISTANCE_M = 25.0


class LoaderError(ConfigError):
    """The data folder does not follow the documented layout; the message says where."""


def safe_load_pickle(path: Path) -> Any:
    """Load a pickle of plain data, or raise LoaderError.

    Bounded before anything is built: the file size (``MAX_PICKLE_BYTES``), every declared
    length against the bytes left, memo indices, and the nesting depth
    (``MAX_PICKLE_DEPTH``; a deeper tuple used as a dict key crashes the stock unpickler's
    process). Only then does the restricted unpickler run.
    """
    try:
        size = path.stat().st_size
        if size > MAX_PICKLE_BYTES:
            raise LoaderError(f"{path} is {size} bytes, over the {MAX_PICKLE_BYTES} byte limit")
        with path.open("rb") as handle:
            data = handle.read(MAX_PICKLE_BYTES + 1)
    except OSError as exc:
        raise LoaderError(f"missing GPS->panorama pickle {path}") from exc
    if len(data) > MAX_PICKLE_BYTES:
        raise LoaderError(f"{path} is over the {MAX_PICKLE_BYTES} byte limit")
    try:
        return load_plain_pickle(data)
    except PICKLE_ERRORS as exc:
        raise LoaderError(f"cannot load {path}: {exc}") from exc


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LoaderError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LoaderError(f"{where} must be a non-empty string, got {value!r}")
    return value.strip()


def _parse_pano_index(data: Any, path: Path) -> list[tuple[float, float, str, float]]:
    if not isinstance(data, dict) or not data:
        raise LoaderError(f"{path} must hold a non-empty dict of GPS -> panorama")
    out = []
    for key, value in data.items():
        where = f"{path} entry {key!r}"
        if isinstance(key, str):
            parts = key.split(",")
            if len(parts) != 2:
                raise LoaderError(f"{where}: a string key must be 'lat,lon'")
            try:
                lat, lon = float(parts[0]), float(parts[1])
            except ValueError as exc:
                raise LoaderError(f"{where}: a string key must be 'lat,lon'") from exc
        elif isinstance(key, tuple) and len(key) == 2:
            lat, lon = _number(key[0], where), _number(key[1], where)
        else:
            raise LoaderError(f"{where}: keys must be (lat, lon) tuples or 'lat,lon' strings")
        if isinstance(value, str):
            pano_id, heading = value, 0.0
        elif isinstance(value, dict):
            pano_id = _text(value.get("pano_id"), f"{where} pano_id")
            heading = _number(value.get("heading", 0.0), f"{where} heading")
        else:
            raise LoaderError(f"{where}: value must be a pano id string or {{'pano_id', 'heading'}}")
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", pano_id):
            raise LoaderError(f"{where}: pano id {pano_id!r} may only hold letters, digits, '_' and '-'")
        out.append((lat, lon, pano_id, heading % 360.0))
    return out


def _load_route_file(path: Path) -> dict[str, Any]:
    if path.stat().st_size > MAX_ROUTE_FILE_BYTES:
        raise LoaderError(f"{path} is larger than {MAX_ROUTE_FILE_BYTES} bytes")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LoaderError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise LoaderError(f"{path} must hold a JSON object")
    return data


def _route_from_json(
    data: dict[str, Any], path: Path, panos: list[tuple[float, float, str, float]], image_dir: Path
) -> Route:
    route_id = _text(data.get("route_id", path.stem), f"{path} route_id")
    instruction = _text(data.get("instruction"), f"{path} instruction")
    start_heading = _number(data.get("start_heading"), f"{path} start_heading") % 360.0
    points_raw = data.get("points")
    if not isinstance(points_raw, list) or len(points_raw) < 2:
        raise LoaderError(f"{path} points must be a list of at least 2 positions")
    points, streets, cross, landmarks, panoramas = [], [], [], [], []
    for i, p in enumerate(points_raw):
        where = f"{path} points[{i}]"
        if not isinstance(p, dict):
            raise LoaderError(f"{where} must be an object")
        lat, lon = _number(p.get("lat"), f"{where}.lat"), _number(p.get("lon"), f"{where}.lon")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise LoaderError(f"{where} has an impossible position ({lat}, {lon})")
        points.append((lat, lon))
        if i < len(points_raw) - 1:
            streets.append(_text(p.get("street"), f"{where}.street"))
        lms = p.get("landmarks", [])
        if not isinstance(lms, list):
            raise LoaderError(f"{where}.landmarks must be a list")
        group = []
        for j, lm in enumerate(lms):
            lw = f"{where}.landmarks[{j}]"
            if not isinstance(lm, dict):
                raise LoaderError(f"{lw} must be an object")
            group.append(
                Landmark(
                    _text(lm.get("name"), f"{lw}.name"),
                    _text(lm.get("kind", "place"), f"{lw}.kind"),
                    _number(lm.get("lat"), f"{lw}.lat"),
                    _number(lm.get("lon"), f"{lw}.lon"),
                )
            )
        landmarks.append(group)
        cs = p.get("cross_streets")
        if cs is not None and (not isinstance(cs, list) or not all(isinstance(s, str) and s for s in cs)):
            raise LoaderError(f"{where}.cross_streets must be a list of street names")
        cross.append(cs)
        best = min(panos, key=lambda q: distance_m((lat, lon), (q[0], q[1])))
        if distance_m((lat, lon), (best[0], best[1])) > MAX_PANO_DISTANCE_M:
            raise LoaderError(f"{where}: no panorama within {MAX_PANO_DISTANCE_M:.0f} m of ({lat}, {lon})")
        image = image_dir / f"{best[2]}.jpg"
        if not image.is_file():
            raise LoaderError(f"{where}: street-view image {image} is missing")
        panoramas.append({"pano_id": best[2], "heading": best[3], "image": str(image)})
    for i, (a, b) in enumerate(zip(points, points[1:], strict=False)):
        if distance_m(a, b) < 1.0:
            raise LoaderError(f"{path} points[{i}] and points[{i + 1}] are the same position")
    depart = [bearing_deg(a, b) for a, b in zip(points, points[1:], strict=False)]
    cross_streets = []
    for i, cs in enumerate(cross):
        default = sorted(
            {s for s in (streets[i - 1] if i > 0 else None, streets[i] if i < len(streets) else None) if s}
        )
        cross_streets.append(sorted(set(cs)) if cs else default)
    goal = data.get("goal_landmark")
    if goal is not None:
        goal = _text(goal, f"{path} goal_landmark")
    return Route(
        route_id=route_id,
        city="path",
        split="all",
        points=points,
        streets=streets,
        depart=depart,
        arrive=list(depart),
        cross_streets=cross_streets,
        landmarks=landmarks,
        start_heading=start_heading,
        sentences=[instruction],
        goal_landmark=goal,
        length_m=sum(distance_m(a, b) for a, b in zip(points, points[1:], strict=False)),
        panoramas=panoramas,
    )


@dataclass
class VIRLDataset:
    root: Path
    routes: list[Route]
    image_shape: tuple[int, int, int]

    def split_routes(self, split: str) -> list[Route]:
        if split == "all":
            return self.routes
        if split not in ("train", "test"):
            raise ValueError(f"split must be train, test or all, got {split!r}")
        chosen = []
        for r in self.routes:
            h = int(hashlib.sha1(r.route_id.encode()).hexdigest(), 16) % 100
            if (h < TEST_PERCENT) == (split == "test"):
                chosen.append(r)
        return chosen

    def route(self, split: str, seed: int) -> Route:
        routes = self.split_routes(split)
        if not routes:
            raise LoaderError(f"{self.root} has no routes in split {split!r}; use split='all'")
        route = routes[seed % len(routes)]
        route.split = split
        return route


def load_virl_dir(directory: str | Path) -> VIRLDataset:
    """Read and validate a V-IRL data folder (layout in the module docstring)."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise LoaderError(f"V-IRL data folder {root} does not exist")
    route_dir, pickle_path, image_dir = root / "routes", root / "gps_to_pano.pkl", root / "streetviews"
    if not route_dir.is_dir():
        raise LoaderError(f"missing route folder {route_dir} (route-info JSON files)")
    if not image_dir.is_dir():
        raise LoaderError(f"missing street-view folder {image_dir}")
    panos = _parse_pano_index(safe_load_pickle(pickle_path), pickle_path)
    files = sorted(route_dir.glob("*.json"))
    if not files:
        raise LoaderError(f"{route_dir} holds no *.json route files")
    routes = [_route_from_json(_load_route_file(f), f, panos, image_dir) for f in files]
    ids = [r.route_id for r in routes]
    if len(set(ids)) != len(ids):
        raise LoaderError(f"{route_dir}: route ids are not unique")
    return VIRLDataset(root, routes, GRID_SHAPE)


def _crop(pano: Image.Image, centre_bearing: float, bearing: float, size: tuple[int, int]) -> Image.Image:
    """A 90-degree window of an equirectangular panorama around ``bearing``."""
    w, h = pano.size
    x = ((bearing - centre_bearing) / 360.0 + 0.5) % 1.0 * w
    half = w / 8.0
    wide = Image.new("RGB", (2 * w, h))
    wide.paste(pano, (0, 0))
    wide.paste(pano, (w, 0))
    left = x - half if x - half >= 0 else x - half + w
    box = (int(left), int(h * 0.25), int(left + 2 * half), int(h * 0.75))
    return wide.crop(box).resize(size)


def panorama_views(route: Route, point: int, heading: float) -> np.ndarray:
    """The 2x2 grid (front, left / right, back) cut from the point's panorama."""
    assert route.panoramas is not None
    info = route.panoramas[point]
    try:
        with Image.open(info["image"]) as img:
            pano = img.convert("RGB")
    except OSError as exc:
        raise LoaderError(f"cannot read street-view image {info['image']}: {exc}") from exc
    grid = Image.new("RGB", (2 * VIEW_W, 2 * VIEW_H))
    for index, (_, offset) in enumerate(VIEW_OFFSETS):
        view = _crop(pano, info["heading"], (heading + offset) % 360.0, (VIEW_W, VIEW_H))
        grid.paste(view, grid_position(index))
    return np.asarray(grid, dtype=np.uint8)
