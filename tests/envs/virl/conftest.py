"""Shared fixtures: a per-session map cache folder, and a tiny original-format data folder."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session", autouse=True)
def virl_cache(tmp_path_factory: pytest.TempPathFactory):
    """Parse each city at most once per session, into a private cache folder."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("sftvsrl-cache")
    mp.setenv("SFTVSRL_CACHE", str(path))
    yield path
    mp.undo()


# A tiny square walk: four corners 100 m apart (about 0.0009 deg of latitude), in a made-up
# spot; route 1 goes north, east, south; route 2 goes east then north.
LAT0, LON0 = 40.7300, -73.9900
DLAT, DLON = 0.0009, 0.00119


def corner(i: int, j: int) -> tuple[float, float]:
    return round(LAT0 + i * DLAT, 6), round(LON0 + j * DLON, 6)


def write_virl_dir(root: Path) -> Path:
    """Write routes/, gps_to_pano.pkl and streetviews/ in the documented layout."""
    (root / "routes").mkdir(parents=True)
    (root / "streetviews").mkdir()
    panos = {}
    for i in range(2):
        for j in range(2):
            lat, lon = corner(i, j)
            pano_id = f"pano_{i}{j}"
            # Key forms: tuples for one half, "lat,lon" strings for the other.
            key = (lat, lon) if j == 0 else f"{lat},{lon}"
            panos[key] = {"pano_id": pano_id, "heading": 90.0 * (i + j)}
            img = np.zeros((64, 256, 3), dtype=np.uint8)
            img[:, :, 0] = np.linspace(0, 255, 256, dtype=np.uint8)[None, :]
            img[:, :, 1] = 60 * (i + 1)
            img[:, :, 2] = 60 * (j + 1)
            Image.fromarray(img).save(root / "streetviews" / f"{pano_id}.jpg")
    with open(root / "gps_to_pano.pkl", "wb") as fh:
        pickle.dump(panos, fh)
    lm = {"name": "Corner Cafe", "kind": "cafe", "lat": corner(1, 1)[0] + 0.0001, "lon": corner(1, 1)[1]}
    route1 = {
        "route_id": "toy_north_east_south",
        "instruction": "First, turn to face north along First Ave. At the next corner turn right "
        "onto Main St. Then turn right onto Second Ave and stop at the corner.",
        "start_heading": 200.0,
        "points": [
            {"lat": corner(0, 0)[0], "lon": corner(0, 0)[1], "street": "First Ave"},
            {"lat": corner(1, 0)[0], "lon": corner(1, 0)[1], "street": "Main St"},
            {"lat": corner(1, 1)[0], "lon": corner(1, 1)[1], "street": "Second Ave", "landmarks": [lm]},
            {"lat": corner(0, 1)[0], "lon": corner(0, 1)[1], "cross_streets": ["Second Ave", "South St"]},
        ],
        "goal_landmark": None,
    }
    route2 = {
        "instruction": "Head east along South St, then turn left onto Second Ave and stop at Corner Cafe.",
        "start_heading": 85.0,
        "goal_landmark": "Corner Cafe",
        "points": [
            {"lat": corner(0, 0)[0], "lon": corner(0, 0)[1], "street": "South St"},
            {"lat": corner(0, 1)[0], "lon": corner(0, 1)[1], "street": "Second Ave"},
            {"lat": corner(1, 1)[0], "lon": corner(1, 1)[1], "landmarks": [lm]},
        ],
    }
    del route1["goal_landmark"]
    (root / "routes" / "r1.json").write_text(json.dumps(route1), encoding="utf-8")
    (root / "routes" / "r2_toy.json").write_text(json.dumps(route2), encoding="utf-8")
    return root


@pytest.fixture()
def virl_dir(tmp_path: Path) -> Path:
    return write_virl_dir(tmp_path / "virl_data")
