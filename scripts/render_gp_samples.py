"""Write the GeneralPoints -VL sample images in docs/img/ (one per colour variant).

    PYTHONPATH=. python scripts/render_gp_samples.py [--out docs/img]

Each image is the observation a -VL environment gives for one seeded hand, so the
pictures in the docs are exactly what a model sees.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sftvsrl.envs.generalpoints.env import GeneralPointsEnv
from sftvsrl.envs.generalpoints.render import save_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/img", help="folder for gp_vl_<colour>.png")
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for color in ("black", "red", "mixed"):
        env = GeneralPointsEnv(vision=True, rule="ood", card_color=color)
        obs, info = env.reset(seed=args.seed)
        path = out / f"gp_vl_{color}.png"
        save_png(obs["image"], path)
        print(f"{path}: {' '.join(info['hand'])}")


if __name__ == "__main__":
    main()
