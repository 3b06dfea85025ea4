import pytest
from PIL import Image

from sftvsrl.study.curves import CurvePoint, at_matched_compute, read_curves, start_point, write_curves
from sftvsrl.study.plots import plot_success_vs_gflops, plot_success_vs_turns


def point(method, step, gflops, split, rate, column=("GeneralPoints", "L"), rec=None):
    return CurvePoint(
        column[0], column[1], method, step, gflops, split, rate, rate - 0.05, rate + 0.05, 100, rec
    )


@pytest.fixture
def points():
    pts = []
    for split, sft_rates, rl_rates in [
        ("id", [0.2, 0.5, 0.7], [0.2, 0.4, 0.6]),
        ("ood", [0.1, 0.05, 0.02], [0.1, 0.15, 0.2]),
    ]:
        for i, (s, r) in enumerate(zip(sft_rates, rl_rates, strict=True)):
            pts.append(point("SFT", i, 10.0 * i, split, s))
            pts.append(point("RL", i, 15.0 * i, split, r))
    pts.append(point("RL", 3, 50.0, "ood", 0.3))
    return pts


def test_csv_round_trip(tmp_path, points):
    pts = points + [point("SFT", 0, 0.0, "id", 0.5, column=("GeneralPoints", "VL"), rec=0.8)]
    path = write_curves(pts, tmp_path / "curves.csv")
    assert read_curves(path) == pts
    header = path.read_text().splitlines()[0].split(",")
    assert header[:9] == [
        "task",
        "variant",
        "method",
        "step",
        "gflops",
        "split",
        "success_rate",
        "ci_low",
        "ci_high",
    ]


def test_bad_csv_names_the_line(tmp_path, points):
    path = write_curves(points, tmp_path / "curves.csv")
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[4] = "not-a-number"  # gflops
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"curves.csv:4: bad row"):
        read_curves(path)


def test_matched_compute_caps_at_smaller_budget(points):
    chosen = at_matched_compute(points, "GeneralPoints-L", "ood")
    # SFT reached 20 GFLOPs; RL went to 50 but is compared at its last point <= 20 (15 GFLOPs).
    assert chosen["SFT"].gflops == 20.0 and chosen["RL"].gflops == 15.0
    assert chosen["RL"].success_rate == pytest.approx(0.15)
    assert start_point(points, "GeneralPoints-L", "ood").gflops == 0.0
    assert at_matched_compute(points, "VIRL-L", "id") is None


def test_plots_are_real_images(tmp_path, points):
    path = plot_success_vs_gflops(points, tmp_path / "fig.png")
    with Image.open(path) as img:
        assert img.width > 300 and img.height > 300
        assert (
            len(img.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10
        )  # lines, bands and text were drawn
    turns = plot_success_vs_turns({"RL": {1: (0.1, 0.05, 0.2), 5: (0.3, 0.2, 0.4)}}, tmp_path / "turns.png")
    assert turns.stat().st_size > 1000
    with pytest.raises(ValueError):
        plot_success_vs_gflops([], tmp_path / "none.png")


def test_recognition_plot(tmp_path):
    from sftvsrl.study.plots import plot_recognition_vs_gflops

    pts = [
        point(m, i, 5.0 * i, "id", 0.3, column=("GeneralPoints", "VL"), rec=0.5 + 0.1 * i)
        for m in ("SFT", "RL")
        for i in range(3)
    ]
    path = plot_recognition_vs_gflops(pts, tmp_path / "rec.png")
    with Image.open(path) as img:
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10


def test_present_splits_in_display_order(points):
    from sftvsrl.study.curves import present_splits

    extra = [point("SFT", 0, 0.0, "visual_ood", 0.1), point("SFT", 0, 0.0, "id_seen", 0.4)]
    assert present_splits(points + extra) == ("id_seen", "id", "ood", "visual_ood")
    assert present_splits([point("SFT", 0, 0.0, "custom", 0.1)]) == ("custom",)


def test_small_rates_get_a_zoomed_axis(points):
    from sftvsrl.study.plots import _success_ylim

    low = [point("SFT", 0, 0.0, "ood", 0.06), point("RL", 1, 1.0, "ood", 0.02)]
    assert _success_ylim(low, "ood") == pytest.approx((-0.5, 12.65))  # top: 1.15 * 11%
    assert _success_ylim(points, "id") == (-2.0, 102.0)
    assert _success_ylim([point("SFT", 0, 0.0, "ood", 0.0)], "ood")[1] == 10.0


def test_rl_training_plot(tmp_path):
    import json

    from sftvsrl.study.plots import plot_rl_training, read_ppo_log

    log = tmp_path / "log.jsonl"
    rows = [
        {"step": i, "mean_reward": -2 + 0.1 * i, "success_rate": None if i == 2 else 0.05 * i}
        for i in range(1, 6)
    ]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_ppo_log(log) == rows
    path = plot_rl_training(rows, tmp_path / "sub" / "rl.png", "toy")
    with Image.open(path) as img:
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10
    with pytest.raises(ValueError):
        plot_rl_training([], tmp_path / "none.png")


def test_rl_summary_reports_the_trend():
    from sftvsrl.study.run import _rl_summary

    rows = [
        {"step": i, "mean_reward": float(i), "success_rate": 0.1 * i, "explained_variance": 0.5}
        for i in range(1, 11)
    ]
    text = _rl_summary(rows)
    assert "10 updates" in text and "1.50 over the first 2 -> 9.50 over the last 2" in text
    assert "15.0% -> 95.0%" in text and "last 2: 0.50" in text
