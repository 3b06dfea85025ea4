import pytest

from sftvsrl.config import ConfigError
from sftvsrl.envs.virl import osm
from sftvsrl.envs.virl.directions import needs_turn
from sftvsrl.envs.virl.routes import (
    MAX_EDGES,
    MAX_ROUTE_M,
    MIN_EDGES,
    MIN_ROUTE_M,
    RouteError,
    district_nodes,
    route_split,
    sample_route,
)


@pytest.mark.parametrize("city", ["helsinki", "kotka"])
def test_routes_meet_constraints_and_are_deterministic(city):
    m = osm.load_city(city)
    for seed in range(40):
        r = sample_route(m, "train", seed)
        again = sample_route(m, "train", seed)
        assert (r.route_id, r.start_heading, r.instruction) == (
            again.route_id,
            again.start_heading,
            again.instruction,
        )
        assert MIN_EDGES <= len(r.streets) <= MAX_EDGES
        assert MIN_ROUTE_M <= r.length_m <= MAX_ROUTE_M
        assert r.plan[-1].action == "stop" and r.plan[-1].point == r.num_points - 1
        assert sum(s.action == "forward" for s in r.plan) == len(r.streets)
        for step in r.plan:
            if step.action == "turn":
                assert needs_turn(step.heading, step.target)
        assert r.instruction.startswith("First,")
        assert r.instruction.rstrip().endswith(".")
        if r.goal_landmark:
            assert r.goal_landmark in r.instruction
            assert r.goal_landmark in [lm.name for lm in r.landmarks[-1]]
        for street in set(r.streets):
            assert street in r.instruction


def test_different_seeds_give_different_routes():
    m = osm.load_city("helsinki")
    ids = {sample_route(m, "train", s).route_id for s in range(50)}
    assert len(ids) > 40


@pytest.mark.parametrize("city", ["helsinki", "kotka"])
def test_splits_are_disjoint(city):
    m = osm.load_city(city)
    routes = {
        split: [sample_route(m, split, s) for s in range(60)] for split in ("train", "test", "district")
    }
    pairs = {split: {frozenset(r.route_id.split("-")[1:]) for r in rs} for split, rs in routes.items()}
    assert not pairs["train"] & pairs["test"]
    assert not pairs["train"] & pairs["district"]
    assert not pairs["test"] & pairs["district"]
    district = district_nodes(m)
    index = {osm_id: i for i, osm_id in enumerate(m.osm_ids)}
    for split, rs in routes.items():
        for r in rs:
            a, b = (index[int(x)] for x in r.route_id.split("-")[1:])
            assert route_split(m, [a, b]) == split or split != "district"
            if split == "district":
                assert a in district and b in district


def test_bad_split():
    with pytest.raises(ValueError):
        sample_route(osm.load_city("kotka"), "validation", 0)
    assert issubclass(RouteError, ConfigError)  # the CLI prints it as a one-line error
