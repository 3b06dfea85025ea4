import json
import os
import pickle
import shutil

import gymnasium as gym
import numpy as np
import pytest

import sftvsrl  # noqa: F401
from sftvsrl.envs.virl.loader import LoaderError, PlainDataUnpickler, load_virl_dir, safe_load_pickle


def test_fixture_loads(virl_dir):
    ds = load_virl_dir(virl_dir)
    assert [r.route_id for r in ds.routes] == ["toy_north_east_south", "r2_toy"]
    r1 = ds.routes[0]
    assert r1.streets == ["First Ave", "Main St", "Second Ave"]
    assert [round(d) for d in r1.depart] == [0, 90, 180]
    assert r1.cross_streets[-1] == ["Second Ave", "South St"]
    assert r1.cross_streets[1] == ["First Ave", "Main St"]
    assert [p["pano_id"] for p in r1.panoramas] == ["pano_00", "pano_10", "pano_11", "pano_01"]
    assert [a.action for a in r1.plan] == ["turn", "forward", "turn", "forward", "turn", "forward", "stop"]
    assert ds.split_routes("all") == ds.routes
    assert len(ds.split_routes("train")) + len(ds.split_routes("test")) == 2


@pytest.mark.parametrize("action_space", ["absolute", "relative"])
@pytest.mark.parametrize("env_id", ["sftvsrl/VIRL-L-v0", "sftvsrl/VIRL-VL-v0"])
def test_env_runs_on_original_format(virl_dir, env_id, action_space):
    env = gym.make(env_id, city=f"path:{virl_dir}", split="all", action_space=action_space)
    for seed in range(2):
        obs, info = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(info["expert_answer"])
            assert reward == 1.0
            done = terminated or truncated
        assert info["success"]
    if "VL" in env_id:
        assert obs["image"].shape == env.observation_space["image"].shape


def test_relative_actions_on_fixture(virl_dir):
    env = gym.make("sftvsrl/VIRL-L-v0", city=f"path:{virl_dir}", split="all", action_space="relative")
    _, info = env.reset(seed=0)  # heading 200, street north: a left turn of 160 deg -> back
    actions = []
    done = False
    while not done:
        actions.append(json.loads(info["expert_answer"])["action"])
        _, _, te, tr, info = env.step(info["expert_answer"])
        done = te or tr
    assert actions == [
        "turn_direction(back)", "forward()", "turn_direction(right)", "forward()",
        "turn_direction(right)", "forward()", "stop()",
    ]  # fmt: skip


def test_panorama_views_follow_heading(virl_dir):
    from sftvsrl.envs.virl.loader import panorama_views

    route = load_virl_dir(virl_dir).routes[0]
    a = panorama_views(route, 0, 0.0)
    b = panorama_views(route, 0, 90.0)
    assert a.shape == b.shape and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    # front at 90 == right view at 0 (both face east)
    h, w = a.shape[0] // 2, a.shape[1] // 2
    assert np.abs(b[:h, :w].astype(int) - a[h:, :w].astype(int)).mean() < 3


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_rejected_without_running(virl_dir, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({(40.73, -73.99): Exploit(marker)})
    (virl_dir / "gps_to_pano.pkl").write_bytes(payload)
    with pytest.raises(LoaderError, match="refusing to load global"):
        load_virl_dir(virl_dir)
    assert not marker.exists()
    # The same bytes do run under the stock unpickler: the test would catch a regression.
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(eval),
        pickle.dumps(np.float64(1.0)),
        b"cbuiltins\nexec\n(Vprint(1)\ntR.",
        b"\x80\x04not a pickle",
        b"",
    ],
)
def test_restricted_unpickler_rejects_non_plain(tmp_path, payload):
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(LoaderError):
        safe_load_pickle(path)


def test_plain_pickle_types_allowed(tmp_path):
    import collections

    data = {
        "a": [1, 2.5, None, True],
        ("t", 1): {"s": {1, 2}, "f": frozenset({3})},
        "o": collections.OrderedDict(x=1),
    }
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(data))
    assert safe_load_pickle(path) == data
    assert issubclass(PlainDataUnpickler, pickle.Unpickler)


def _edit_route(virl_dir, fn):
    path = virl_dir / "routes" / "r1.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: shutil.rmtree(d / "routes"), "missing route folder"),
        (lambda d: shutil.rmtree(d / "streetviews"), "missing street-view folder"),
        (lambda d: (d / "gps_to_pano.pkl").unlink(), "missing GPS->panorama pickle"),
        (lambda d: (d / "streetviews" / "pano_11.jpg").unlink(), "pano_11.jpg is missing"),
        (lambda d: (d / "routes" / "r1.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "routes" / "r1.json").write_text("[1, 2]"), "must hold a JSON object"),
        (lambda d: _edit_route(d, lambda r: r.pop("instruction")), "instruction must be"),
        (lambda d: _edit_route(d, lambda r: r.update(start_heading="east")), "start_heading must be"),
        (lambda d: _edit_route(d, lambda r: r.update(points=r["points"][:1])), "at least 2"),
        (lambda d: _edit_route(d, lambda r: r["points"][0].pop("street")), r"points\[0\].street"),
        (lambda d: _edit_route(d, lambda r: r["points"][1].update(lat=95.0)), "impossible position"),
        (lambda d: _edit_route(d, lambda r: r["points"][1].update(lat=41.0)), "no panorama within"),
        (
            lambda d: _edit_route(d, lambda r: r["points"][2]["landmarks"][0].pop("name")),
            r"landmarks\[0\].name",
        ),
        (lambda d: _edit_route(d, lambda r: r.update(route_id="r2_toy")), "not unique"),
        (lambda d: (d / "gps_to_pano.pkl").write_bytes(pickle.dumps([1, 2])), "non-empty dict"),
        (lambda d: (d / "gps_to_pano.pkl").write_bytes(pickle.dumps({"1;2": "p"})), "lat,lon"),
        (
            lambda d: (d / "gps_to_pano.pkl").write_bytes(pickle.dumps({(40.73, -73.99): "../../etc/x"})),
            "pano id",
        ),
    ],
)
def test_malformed_data_gives_clear_errors(virl_dir, mutate, message):
    mutate(virl_dir)
    with pytest.raises(LoaderError, match=message):
        load_virl_dir(virl_dir)


def test_missing_folder_and_empty_split(tmp_path, virl_dir):
    with pytest.raises(LoaderError, match="does not exist"):
        load_virl_dir(tmp_path / "nope")
    ds = load_virl_dir(virl_dir)
    empty = "train" if not ds.split_routes("train") else "test" if not ds.split_routes("test") else None
    if empty:
        with pytest.raises(LoaderError, match="no routes in split"):
            ds.route(empty, 0)
