"""V-IRL speed: map load (cold parse vs disk cache vs memory) and env reset+step throughput.

    PYTHONPATH=. python benchmarks/bench_virl.py [--episodes 200] [--vl-episodes 20]

Cold loads use a fresh temporary cache folder, so the numbers do not depend on what is
already cached on the machine. Run it alone: the machine's other work skews timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200, help="-L expert episodes per configuration")
    parser.add_argument("--vl-episodes", type=int, default=20, help="-VL expert episodes per city")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        os.environ["SFTVSRL_CACHE"] = cache
        import gymnasium as gym

        import sftvsrl  # noqa: F401
        from sftvsrl.envs.virl import osm

        print("map load (median of runs, seconds)")
        for city in ("helsinki", "kotka"):

            def cold(city=city):
                for f in os.listdir(cache):
                    os.remove(os.path.join(cache, f))
                osm.clear_memory_cache()
                osm.load_city(city)

            def disk(city=city):
                osm.clear_memory_cache()
                osm.load_city(city)

            c = statistics.median(timed(cold, args.repeat))
            d = statistics.median(timed(disk, args.repeat))
            m = statistics.median(timed(lambda city=city: osm.load_city(city), args.repeat))
            street_map = osm.load_city(city)
            print(
                f"  {city:9s} cold parse {c:7.3f}  disk cache {d:7.3f}  memory {m * 1e6:7.1f} us   "
                f"({street_map.num_nodes} nodes, {len(street_map.edges)} edges, {len(street_map.places)} places)"
            )

        print("env throughput, following the expert (reset + every step)")
        configs = [("sftvsrl/VIRL-L-v0", city, space, style, args.episodes)
                   for city in ("helsinki", "kotka") for space in ("absolute", "relative") for style in ("full",)]  # fmt: skip
        configs.append(("sftvsrl/VIRL-L-v0", "helsinki", "absolute", "compact", args.episodes))
        configs += [
            ("sftvsrl/VIRL-VL-v0", city, "absolute", "full", args.vl_episodes)
            for city in ("helsinki", "kotka")
        ]
        for env_id, city, space, style, episodes in configs:
            env = gym.make(env_id, city=city, action_space=space, prompt_style=style)
            env.reset(seed=10_000)  # warm the route source
            steps = 0
            reset_time = 0.0
            start = time.perf_counter()
            for seed in range(episodes):
                t0 = time.perf_counter()
                _, info = env.reset(seed=seed)
                reset_time += time.perf_counter() - t0
                done = False
                while not done:
                    _, _, terminated, truncated, info = env.step(info["expert_answer"])
                    steps += 1
                    done = terminated or truncated
            total = time.perf_counter() - start
            print(
                f"  {env_id.split('/')[1]:12s} {city:9s} {space:8s} {style:7s} {episodes:4d} episodes "
                f"{steps / total:8.0f} steps/s  {episodes / total:7.1f} episodes/s  "
                f"reset {reset_time / episodes * 1e3:6.2f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
