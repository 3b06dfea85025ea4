import json
import os
import pickle
import shutil
import struct
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import sftvsrl  # noqa: F401
from sftvsrl.envs.virl.loader import LoaderError, load_virl_dir, safe_load_pickle
from sftvsrl.envs.virl.safepickle import PlainDataUnpickler


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


# --- plain-data pickles that exhaust memory or the stack (issue 12) ----------------------


def _pickle_file(tmp_path, payload: bytes):
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_pickles_of_every_protocol_pass_the_scan(tmp_path, protocol):
    import collections

    shared = [1, 2]
    data = {
        "a": [1, 2.5, None, True, 10**30, -(2**70)],
        ("t", 1): {"s": {1, 2}, "f": frozenset({3}), "shared": (shared, shared)},
        "o": collections.OrderedDict(x=1),
        "deep": ((((((((1,),),),),),),),),
        (40.73, -73.99): {"pano_id": "p_1", "heading": 90.0},
    }
    if protocol >= 3:  # protocols 0-2 write bytes through a codecs global, refused as not plain
        data["b"] = b"raw"
    assert safe_load_pickle(_pickle_file(tmp_path, pickle.dumps(data, protocol=protocol))) == data


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        # BINBYTES8 declaring 2**62 bytes: the stock unpickler raises MemoryError
        (b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b".", "bytes8"),
        # BINUNICODE8 declaring 2**64 - 1 bytes: the stock unpickler raises OverflowError
        (b"\x80\x04\x8d" + struct.pack("<Q", 2**64 - 1) + b".", "unicodestring8"),
        (b"\x80\x04\x8c\xff" + b"x" * 10 + b".", "remain"),  # SHORT_BINUNICODE past the end
        (b"\x80\x03B" + struct.pack("<I", 2**31) + b".", "remain"),  # BINBYTES past the end
        (b"\x80\x04\x95" + struct.pack("<Q", 2**62) + b"N.", "frame"),  # FRAME past the end
        (b"\x80\x02Nr\xff\xff\xff\x7f.", "memo index"),  # LONG_BINPUT 2**31 - 1: a 16 GB memo
        (b"\x80\x02" + b"]" * 101 + b"a" * 100 + b".", "deeper than"),  # 101 nested lists
        (b"\x80\x02)" + b"\x85" * 200 + b".", "deeper than"),  # 201 nested tuples
        (b"\x80\x02(" * 150 + b"N" + b"t" * 150 + b".", "deeper than"),  # MARK ... TUPLE
        (pickle.dumps((lambda x: (x.append(x), x)[1])([1])), "recursive"),  # a list inside itself
        # a list deepened after it was placed inside a tuple: the tuple deepens with it
        (b"\x80\x02]q\x00h\x00\x85q\x010" + b"]" * 99 + b"a" * 98 + b"a0h\x01.", "deeper than"),
        (b"\x80\x02NN.", "exactly one object"),
        (b"\x80\x02a.", "empty stack"),
        (b"\x80\x02e.", "MARK"),
        (b"\x80\x02h\x05.", "never stored"),
        (b"\x80\x02N", "STOP"),
        (b"\x80\x02L" + b"9" * 5000 + b"L\n.", "digits"),  # over the int string limit
    ],
)
def test_hostile_plain_pickles_get_the_loaders_error(tmp_path, payload, message):
    start = time.perf_counter()
    with pytest.raises(LoaderError, match=message):
        safe_load_pickle(_pickle_file(tmp_path, payload))
    assert time.perf_counter() - start < 1.0


def test_file_size_is_bounded_before_reading(tmp_path, monkeypatch):
    from sftvsrl.envs.virl import loader

    monkeypatch.setattr(loader, "MAX_PICKLE_BYTES", 100)
    with pytest.raises(LoaderError, match="byte limit"):
        safe_load_pickle(_pickle_file(tmp_path, pickle.dumps(list(range(100)))))
    assert safe_load_pickle(_pickle_file(tmp_path, pickle.dumps([1]))) == [1]


_DEEP_KEY_SCRIPT = """
import pathlib, sys
from sftvsrl.envs.virl.loader import LoaderError, safe_load_pickle
path = pathlib.Path(sys.argv[1])
# a 1 MB pickle: {t: 1} where t is a 1,000,000-deep tuple (EMPTY_TUPLE, then TUPLE1 1M times)
path.write_bytes(b"\\x80\\x04}(" + b")" + b"\\x85" * 1_000_000 + b"K\\x01s.")
try:
    safe_load_pickle(path)
except LoaderError as exc:
    print("refused:", str(exc)[-60:])
"""


def test_deep_tuple_key_is_refused_without_crashing(tmp_path):
    # Run in a child process: a regression segfaults the child, not pytest.
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _DEEP_KEY_SCRIPT, str(tmp_path / "deep.pkl")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-500:])
    assert "refused:" in result.stdout and "deeper than" in result.stdout


def test_virl_env_step_cost_does_not_grow_with_the_answer(virl_dir):
    from sftvsrl.envs.virl.env import VIRLEnv

    env = VIRLEnv(city=f"path:{virl_dir}", split="all", max_turns=20)
    env.reset(seed=0)
    for answer in ("x" * 10_000_000, " " * 10_000_000, b"\xff" * 10_000_000, None, 3):
        start = time.perf_counter()
        obs, reward, *_, info = env.step(answer)
        assert time.perf_counter() - start < 0.5
        assert (reward, info["outcome"], info["valid_action"]) == (-1.0, "bad_format", False)
        assert len(obs) < 50_000
