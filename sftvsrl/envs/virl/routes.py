"""Routes: sampled shortest walks between intersections, their landmarks, the V-IRL-style
instruction, and the expert plan (the action sequence that follows the route).

Sampling (deterministic per ``(city, split, seed)``): pick a start intersection (degree >= 3),
then a goal intersection whose walking distance is 300 m to 2 km; the route is the shortest
path. It is kept only if it has 3 to 10 edges (decision points), no edge shorter than 20 m
(dual-carriageway slivers), and every "walk until ..." cue is unambiguous: the cross street
that ends a leg is not seen at an earlier intersection of that leg.

Splits are disjoint by route. ``district``: routes whose start and goal both lie in the
held-out district (nodes in the northernmost quarter of the map by latitude). ``train`` /
``test``: routes touching no district node, assigned by SHA-1 of the unordered pair of
endpoint OSM node ids (test when the hash mod 100 < 20), so a route and its reverse share
a split.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field

from sftvsrl.config import ConfigError
from sftvsrl.envs.virl.directions import absolute_direction, needs_turn, relative_direction, signed_turn
from sftvsrl.envs.virl.osm import Place, StreetMap, bearing_deg, distance_m

SPLITS = ("train", "test", "district")
TEST_PERCENT = 20
DISTRICT_QUANTILE = 0.75
MIN_ROUTE_M, MAX_ROUTE_M = 300.0, 2000.0
MIN_EDGES, MAX_EDGES = 3, 10
MIN_EDGE_M = 20.0
MAX_ATTEMPTS = 3000


class RouteError(ConfigError):
    """No route fits the constraints (a tiny map or an empty split)."""


@dataclass(frozen=True)
class Landmark:
    name: str
    kind: str
    lat: float
    lon: float


@dataclass(frozen=True)
class PlanStep:
    """One expert action: taken at route point ``point`` while facing ``heading``."""

    point: int
    heading: float
    action: str  # "forward" | "turn" | "stop"
    target: float | None  # bearing to face after a turn
    sentence: int  # index into Route.sentences that this action executes


@dataclass
class Route:
    """Everything an episode needs, independent of where the route came from (OSM or the
    original V-IRL files)."""

    route_id: str
    city: str
    split: str
    points: list[tuple[float, float]]  # (lat, lon) of the key positions, start to goal
    streets: list[str]  # street walked on leg i (point i -> i + 1)
    depart: list[float]  # heading leaving point i along leg i
    arrive: list[float]  # heading arriving at point i + 1 along leg i
    cross_streets: list[list[str]]  # street names meeting at each point
    landmarks: list[list[Landmark]]  # named places visible at each point
    start_heading: float
    sentences: list[str] = field(default_factory=list)
    compact_sentences: list[str] = field(default_factory=list)  # same content, short form (prompt.py)
    goal_landmark: str | None = None
    length_m: float = 0.0
    branches: list[list[tuple[float, str]]] = field(
        default_factory=list
    )  # (bearing, street) leaving each point
    panoramas: list[dict] | None = None  # original-data routes: per point {"pano_id", "heading", "image"}
    plan: list[PlanStep] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.plan:
            self.plan = build_plan(self)

    @property
    def instruction(self) -> str:
        return " ".join(self.sentences)

    @property
    def compact_instruction(self) -> str:
        return "; ".join(self.compact_sentences) if self.compact_sentences else self.instruction

    @property
    def num_points(self) -> int:
        return len(self.points)


def side_of(heading: float, origin: tuple[float, float], target: tuple[float, float]) -> str:
    """Where ``target`` appears for someone at ``origin`` facing ``heading``:
    front / right / back / left (90-degree sectors)."""
    if distance_m(origin, target) < 1.0:
        return "front"
    d = signed_turn(heading, bearing_deg(origin, target))
    if abs(d) <= 45.0:
        return "front"
    if abs(d) > 135.0:
        return "back"
    return "right" if d > 0 else "left"


SIDE_PHRASE = {
    "front": "ahead of you",
    "left": "on your left",
    "right": "on your right",
    "back": "behind you",
}


def heading_at(route: Route, point: int) -> float:
    """Heading on arriving at ``point`` (the start heading at point 0)."""
    return route.start_heading if point == 0 else route.arrive[point - 1]


def build_plan(route: Route, sentence_of_turn: dict[int, int] | None = None) -> list[PlanStep]:
    """The expert's action sequence. A turn is needed at a point when the next street
    leaves more than 15 degrees away from the current heading (see directions.py)."""
    steps: list[PlanStep] = []
    mapping = sentence_of_turn or {}
    sentence = 0
    last = route.num_points - 1
    for i in range(last):
        heading = heading_at(route, i)
        target = route.depart[i]
        if needs_turn(heading, target):
            sentence = mapping.get(2 * i, sentence)
            steps.append(PlanStep(i, heading, "turn", target, sentence))
            heading = target
        sentence = mapping.get(2 * i + 1, sentence)
        steps.append(PlanStep(i, heading, "forward", None, sentence))
    sentence = mapping.get(2 * last, sentence)
    steps.append(PlanStep(last, heading_at(route, last), "stop", None, sentence))
    return steps


# --- instruction text -----------------------------------------------------------------


def _turn_phrase(heading: float, target: float) -> str:
    rel = relative_direction(heading, target) or "straight"
    if rel == "back":
        return f"turn around to face {absolute_direction(target)}"
    return f"turn {rel} to face {absolute_direction(target)}"


def _landmark_at(route: Route, point: int, heading: float) -> tuple[str, str] | None:
    """(name, side) of the nearest place at ``point`` for a walker facing ``heading``."""
    for lm in route.landmarks[point]:
        return lm.name, side_of(heading, route.points[point], (lm.lat, lm.lon))
    return None


def _leg_cue(route: Route, start: int, end: int) -> str | None:
    """The cross street that marks the end of a leg: one not seen earlier in the leg."""
    street = route.streets[end - 1]
    seen = set()
    for p in range(start + 1, end):
        seen.update(route.cross_streets[p])
    options = [s for s in route.cross_streets[end] if s != street and s not in seen]
    return options[0] if options else None


def _leg_streets(route: Route, start: int, end: int) -> list[str]:
    """The streets of a leg in walking order, without consecutive repeats."""
    names: list[str] = []
    for street in route.streets[start:end]:
        if not names or names[-1] != street:
            names.append(street)
    return names


def _join_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


_ABBREV = {
    "north": "N", "north-east": "NE", "east": "E", "south-east": "SE",
    "south": "S", "south-west": "SW", "west": "W", "north-west": "NW",
}  # fmt: skip


def write_instruction(route: Route) -> tuple[list[str], list[str], dict[int, int]] | None:
    """V-IRL-style sentences, the same sentences in compact form, and a map from plan slot
    (2*point for a turn, 2*point+1 for the forward moves, 2*last for stop) to sentence
    index; None when a cue is ambiguous.

    Compact forms: ``T <rel>/<ABS> <street>`` (turn), ``H <ABS> <street>`` (head off),
    ``W <street>[+<street>]><cross street>[ <place>@<F|L|R|B>]`` (walk until), and
    ``S <place>`` or ``S <street>&<street>`` (stop)."""
    last = route.num_points - 1
    full: list[str] = []
    compact: list[str] = []
    slots: dict[int, int] = {}
    turn_points = [i for i in range(last) if needs_turn(heading_at(route, i), route.depart[i])]
    # Leg boundaries: the start, every later turn point, and the goal.
    bounds = sorted({0, *[p for p in turn_points if p > 0], last})
    for leg_index, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        heading = heading_at(route, a)
        target = route.depart[a]
        first = "First, " if leg_index == 0 else "Then "
        if a in turn_points:
            slots[2 * a] = len(full)
            full.append(f"{first}{_turn_phrase(heading, target)} onto {route.streets[a]}.")
            rel = relative_direction(heading, target)
            compact.append(f"T {rel}/{_ABBREV[absolute_direction(target)]} {route.streets[a]}")
        elif leg_index == 0:
            full.append(f"First, head {absolute_direction(target)} along {route.streets[a]}.")
            compact.append(f"H {_ABBREV[absolute_direction(target)]} {route.streets[a]}")
        cross = _leg_cue(route, a, b)
        if cross is None:
            return None
        streets = _leg_streets(route, a, b)
        mark = _landmark_at(route, b, route.arrive[b - 1])
        if b == last and not route.goal_landmark:
            mark = None
        clause = f", where {mark[0]} is {SIDE_PHRASE[mark[1]]}" if mark else ""
        slots[2 * a + 1] = len(full)
        full.append(
            f"Walk forward along {' and then '.join(streets)} until you reach the intersection with {cross}{clause}."
        )
        compact.append(
            f"W {'+'.join(streets)}>{cross}" + (f" {mark[0]}@{mark[1][0].upper()}" if mark else "")
        )
        if b == last:
            slots[2 * last] = len(full)
            if route.goal_landmark:
                full.append(f"Stop there, at {route.goal_landmark}.")
                compact.append(f"S {route.goal_landmark}")
            else:
                names = route.cross_streets[b][:3]
                full.append(f"Stop at the intersection of {_join_names(names)}.")
                compact.append(f"S {'&'.join(names)}")
    return full, compact, slots


# --- sampling on the street graph -----------------------------------------------------


def _shortest_paths(
    street_map: StreetMap, source: int
) -> tuple[dict[int, float], dict[int, tuple[int, int]]]:
    cache = street_map.scratch.setdefault("dijkstra", {})
    if source in cache:
        return cache[source]
    dist = {source: 0.0}
    prev: dict[int, tuple[int, int]] = {}
    heap = [(0.0, source)]
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist.get(node, float("inf")):
            continue
        for e in street_map.adjacency[node]:
            edge = street_map.edges[e]
            other = edge.other(node)
            nd = d + edge.length_m
            if nd < dist.get(other, float("inf")) - 1e-9:
                dist[other] = nd
                prev[other] = (node, e)
                heapq.heappush(heap, (nd, other))
    cache[source] = (dist, prev)
    return dist, prev


def district_nodes(street_map: StreetMap) -> set[int]:
    """The held-out district: nodes in the northernmost quarter of the map."""
    cached = street_map.scratch.get("district")
    if cached is None:
        lats = sorted(street_map.lats)
        cut = lats[int(DISTRICT_QUANTILE * (len(lats) - 1))]
        cached = {i for i, lat in enumerate(street_map.lats) if lat > cut}
        street_map.scratch["district"] = cached
    return cached


def route_split(street_map: StreetMap, nodes: list[int]) -> str | None:
    """The split a route belongs to, or None when it straddles the district border."""
    district = district_nodes(street_map)
    inside = [n in district for n in nodes]
    if inside[0] and inside[-1]:
        return "district"
    if any(inside):
        return None
    a, b = sorted((street_map.osm_ids[nodes[0]], street_map.osm_ids[nodes[-1]]))
    h = int(hashlib.sha1(f"{a}-{b}".encode()).hexdigest(), 16) % 100
    return "test" if h < TEST_PERCENT else "train"


def _landmarks_at(street_map: StreetMap, node: int) -> list[Landmark]:
    out = []
    for i in street_map.node_places[node]:
        p: Place = street_map.places[i]
        out.append(Landmark(p.name, p.kind, p.lat, p.lon))
    return out


def route_from_path(
    street_map: StreetMap, nodes: list[int], edge_ids: list[int], start_heading: float, split: str
) -> Route | None:
    """Assemble a Route from a graph path; None when its instruction would be ambiguous."""
    edges = [street_map.edges[e] for e in edge_ids]
    landmarks = [_landmarks_at(street_map, n) for n in nodes]
    goal = landmarks[-1][0].name if landmarks[-1] else None
    route = Route(
        route_id=f"{street_map.city}-{street_map.osm_ids[nodes[0]]}-{street_map.osm_ids[nodes[-1]]}",
        city=street_map.city,
        split=split,
        points=[street_map.position(n) for n in nodes],
        streets=[e.name for e in edges],
        depart=[e.depart(n) for e, n in zip(edges, nodes, strict=False)],
        arrive=[e.arrive(n) for e, n in zip(edges, nodes, strict=False)],
        cross_streets=[street_map.street_names(n) for n in nodes],
        landmarks=landmarks,
        branches=[
            [(street_map.edges[e].depart(n), street_map.edges[e].name) for e in street_map.adjacency[n]]
            for n in nodes
        ],
        start_heading=start_heading,
        goal_landmark=goal,
        length_m=sum(e.length_m for e in edges),
    )
    written = write_instruction(route)
    if written is None:
        return None
    route.sentences, route.compact_sentences, slots = written
    route.plan = build_plan(route, slots)
    return route


def sample_route(street_map: StreetMap, split: str, seed: int) -> Route:
    """The route for ``(city, split, seed)``; the same arguments always give the same route."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = random.Random(f"virl:{street_map.city}:{split}:{seed}")
    district = district_nodes(street_map)
    intersections = [n for n in range(street_map.num_nodes) if street_map.degree(n) >= 3]
    if split == "district":
        intersections = [n for n in intersections if n in district]
    else:
        intersections = [n for n in intersections if n not in district]
    if not intersections:
        raise RouteError(f"{street_map.city} has no intersections for split {split!r}")
    for _ in range(MAX_ATTEMPTS):
        start = rng.choice(intersections)
        dist, prev = _shortest_paths(street_map, start)
        goals = [n for n in intersections if n != start and MIN_ROUTE_M <= dist.get(n, -1.0) <= MAX_ROUTE_M]
        if not goals:
            continue
        goal = rng.choice(goals)
        heading = rng.uniform(0.0, 360.0)
        nodes, edge_ids = [goal], []
        while nodes[-1] != start:
            node, e = prev[nodes[-1]]
            nodes.append(node)
            edge_ids.append(e)
        nodes.reverse()
        edge_ids.reverse()
        if not MIN_EDGES <= len(edge_ids) <= MAX_EDGES:
            continue
        if any(street_map.edges[e].length_m < MIN_EDGE_M for e in edge_ids):
            continue
        if route_split(street_map, nodes) != split:
            continue
        route = route_from_path(street_map, nodes, edge_ids, round(heading, 1), split)
        if route is not None:
            return route
    raise RouteError(f"no route found for {street_map.city}/{split} seed {seed} in {MAX_ATTEMPTS} attempts")
