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


def _summary(rate, rule, n=20, shares=None, kl=None):
    from sftvsrl.evaluation.summary import share
    from sftvsrl.evaluation.wilson import wilson_interval

    k = round(rule * n)
    s = {
        "success_rate": rate,
        "ci95": list(wilson_interval(round(rate * 10), 10)),
        "episodes": 10,
        "answers": n,
        "outcome_shares": shares or {"bad_format": 0.75, "wrong_value": 0.25},
        **share("rule_following", k, n),
    }
    if kl is not None:
        s["kl_to_base"] = kl
    return s


def test_point_from_summary_fills_every_metric():
    from sftvsrl.envs.tasks import get_task

    gp_vl = get_task("GeneralPoints-VL")
    s = {
        **_summary(0.1, 0.5, kl=0.02),
        "recognition_accuracy": 0.5,
        "recognition_ci95": [0.2, 0.8],
        "recognition_n": 4,
    }
    p = CurvePoint.from_summary(gp_vl, "RL", 3, 12.0, "ood", s, kl_to_init=0.01)
    assert (p.task, p.variant, p.method, p.step, p.split, p.episodes) == (
        "GeneralPoints",
        "VL",
        "RL",
        3,
        "ood",
        10,
    )
    assert p.rule_following == 0.5 and p.rule_following_n == 20 and p.rule_following_ci_low < 0.5
    assert p.recognition_acc == 0.5 and p.recognition_acc_n == 4 and p.recognition_acc_ci_high == 0.8
    assert p.valid_action is None and p.step_accuracy is None  # not GeneralPoints metrics
    assert p.kl_to_base == 0.02 and p.kl_to_init == 0.01 and p.answers == 20
    assert dict(p.outcome_shares) == {"bad_format": 0.75, "wrong_value": 0.25}
    value, lo, hi, n = p.metric("share:bad_format")
    assert value == 0.75 and lo < 0.75 < hi and n == 20
    # A study that caches points as JSON gets the same point back.
    import json
    from dataclasses import asdict

    assert CurvePoint(**json.loads(json.dumps(asdict(p)))) == p
    # No recognition column without the task's curve_metric, even if the summary has one.
    assert (
        CurvePoint.from_summary(get_task("GeneralPoints-L"), "RL", 3, 12.0, "ood", s).recognition_acc is None
    )


def test_csv_round_trip_with_the_new_columns(tmp_path):
    from sftvsrl.envs.tasks import get_task
    from sftvsrl.study.curves import BASE_COLUMNS, COLUMNS

    gp, virl = get_task("GeneralPoints-L"), get_task("VIRL-L")
    virl_summary = {
        **_summary(0.0, 0.0, shares={"invalid_action": 1.0}),
        "valid_action": 0.0, "valid_action_ci95": [0.0, 0.16], "valid_action_n": 20,
    }  # fmt: skip
    pts = [
        CurvePoint.from_summary(gp, "SFT", 1, 5.0, "id", _summary(0.3, 0.9, kl=0.1), kl_to_init=0.05),
        CurvePoint.from_summary(virl, "RL", 2, 6.0, "ood", virl_summary),
        point("SFT", 0, 0.0, "id", 0.5),  # an old-style point: every new column empty
    ]
    path = write_curves(pts, tmp_path / "curves.csv")
    assert read_curves(path) == pts
    header = path.read_text().splitlines()[0].split(",")
    assert header[: len(BASE_COLUMNS)] == BASE_COLUMNS == COLUMNS[: len(BASE_COLUMNS)]
    assert header[-3:] == ["share_bad_format", "share_invalid_action", "share_wrong_value"]
    assert {"rule_following_ci_low", "valid_action_n", "kl_to_base", "kl_to_init", "answers"} <= set(header)


def test_old_format_curves_are_still_read(tmp_path):
    from sftvsrl.study.curves import BASE_COLUMNS

    path = tmp_path / "old.csv"
    path.write_text(
        ",".join(BASE_COLUMNS) + "\nGeneralPoints,VL,RL,2,4.5,ood,0.25,0.1,0.4,20,0.75\n", encoding="utf-8"
    )
    (p,) = read_curves(path)
    assert p.recognition_acc == 0.75 and p.rule_following is None and p.kl_to_base is None
    assert p.outcome_shares == () and p.metric("rule_following") is None


def test_metrics_figure(tmp_path):
    from sftvsrl.envs.tasks import get_task
    from sftvsrl.study.curves import present_metrics
    from sftvsrl.study.plots import plot_metrics_vs_gflops

    gp = get_task("GeneralPoints-L")
    pts = []
    for split, sft, rl in [
        ("id", [0.2, 0.6, 0.9], [0.2, 0.5, 0.7]),
        ("ood", [0.1, 0.1, 0.1], [0.1, 0.1, 0.1]),
    ]:
        for i in range(3):  # identical OOD lines: both must stay visible
            pts.append(
                CurvePoint.from_summary(gp, "SFT", i, 10.0 * i, split, _summary(0.0, sft[i], kl=0.05 * i))
            )
            pts.append(
                CurvePoint.from_summary(gp, "RL", i, 10.0 * i, split, _summary(0.0, rl[i], kl=0.02 * i))
            )
    assert present_metrics(pts) == ("rule_following", "kl_to_base")
    path = plot_metrics_vs_gflops(
        pts, tmp_path / "metrics.png", metrics=[*present_metrics(pts), "share:bad_format"]
    )
    with Image.open(path) as img:
        assert img.height > img.width * 0.6  # three rows
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 10
    with pytest.raises(ValueError):
        plot_metrics_vs_gflops([], tmp_path / "none.png")
