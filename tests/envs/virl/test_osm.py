import gzip
import json
import time

import pytest

from sftvsrl.envs.virl import osm


@pytest.fixture(params=["helsinki", "kotka"])
def city_map(request):
    return osm.load_city(request.param)


def test_graph_is_sane(city_map):
    m = city_map
    assert m.num_nodes > 50 and len(m.edges) > 50
    for e in m.edges:
        assert e.name and e.length_m > 0
        assert 0 <= e.bearing_u < 360 and 0 <= e.bearing_v < 360
        assert e.coords[0] == m.position(e.u) and e.coords[-1] == m.position(e.v)
        # Leaving v goes back the way we came.
        assert e.depart(e.v) == pytest.approx((e.bearing_v + 180) % 360)
    # Contraction: a kept node of degree 2 must be a street-name change.
    for n in range(m.num_nodes):
        if m.degree(n) == 2:
            names = {m.edges[i].name for i in m.adjacency[n]}
            loop = len(set(m.adjacency[n])) == 1
            assert len(names) == 2 or loop
    # One connected part.
    seen, stack = {0}, [0]
    while stack:
        for e in m.adjacency[stack.pop()]:
            o = m.edges[e].other(m.edges[e].u if m.edges[e].u in seen else m.edges[e].v)
            for x in (m.edges[e].u, m.edges[e].v, o):
                if x not in seen:
                    seen.add(x)
                    stack.append(x)
    assert len(seen) == m.num_nodes


def test_helsinki_has_named_places_near_intersections():
    m = osm.load_city("helsinki")
    assert len(m.places) > 800
    kinds = {p.kind for p in m.places}
    assert {"hotel", "restaurant", "cafe"} <= kinds
    assert sum(bool(x) for x in m.node_places) > 0.8 * m.num_nodes
    for node, places in enumerate(m.node_places):
        for i in places:
            assert (
                osm.distance_m(m.position(node), (m.places[i].lat, m.places[i].lon)) <= osm.LANDMARK_RADIUS_M
            )


def test_bearing_and_distance():
    a = (60.0, 25.0)
    assert osm.bearing_deg(a, (60.001, 25.0)) == pytest.approx(0.0, abs=1e-6)
    assert osm.bearing_deg(a, (60.0, 25.001)) == pytest.approx(90.0, abs=1e-6)
    assert osm.bearing_deg(a, (59.999, 25.0)) == pytest.approx(180.0, abs=1e-6)
    assert osm.bearing_deg(a, (60.0, 24.999)) == pytest.approx(270.0, abs=1e-6)
    assert osm.distance_m(a, (60.001, 25.0)) == pytest.approx(111.2, abs=0.5)


def test_cache_hit_does_not_reparse(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTVSRL_CACHE", str(tmp_path))
    osm.clear_memory_cache()
    start = time.perf_counter()
    first = osm.load_city("helsinki")
    cold = time.perf_counter() - start
    assert cold < 10.0, f"first parse of Helsinki took {cold:.1f} s"
    files = list(tmp_path.glob("osm-helsinki-*.json.gz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp*"))

    def boom(*args, **kwargs):
        raise AssertionError("re-parsed the map despite a valid cache")

    monkeypatch.setattr(osm, "parse_pbf", boom)
    osm.clear_memory_cache()
    second = osm.load_city("helsinki")
    assert second.osm_ids == first.osm_ids and second.edges == first.edges
    assert osm.load_city("helsinki") is second  # memory hit
    osm.clear_memory_cache()


def test_stale_or_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTVSRL_CACHE", str(tmp_path))
    osm.clear_memory_cache()
    osm.load_city("kotka")
    (cache_file,) = tmp_path.glob("osm-kotka-*.json.gz")
    with gzip.open(cache_file, "rt", encoding="utf-8") as fh:
        data = json.load(fh)
    data["version"] = -1
    with gzip.open(cache_file, "wt", encoding="utf-8") as fh:
        json.dump(data, fh)
    calls = []
    real = osm.parse_pbf
    monkeypatch.setattr(osm, "parse_pbf", lambda *a: calls.append(1) or real(*a))
    osm.clear_memory_cache()
    osm.load_city("kotka")
    assert calls == [1]
    cache_file.write_bytes(b"not gzip at all")
    osm.clear_memory_cache()
    osm.load_city("kotka")
    assert calls == [1, 1]
    osm.clear_memory_cache()


def test_unknown_city():
    with pytest.raises(osm.MapError, match="unknown city"):
        osm.load_city("atlantis")
