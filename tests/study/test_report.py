from sftvsrl.study.curves import CurvePoint
from sftvsrl.study.report import build_report, finding


def p(method, gflops, split, rate, half=0.05, rec=None):
    return CurvePoint(
        "GeneralPoints", "L", method, int(gflops), gflops, split, rate, rate - half, rate + half, 100, rec
    )


def test_table_uses_matched_compute_and_changes():
    points = [
        p("SFT", 0, "ood", 0.20),
        p("RL", 0, "ood", 0.20),
        p("SFT", 10, "ood", 0.10),
        p("RL", 8, "ood", 0.35),
        p("RL", 30, "ood", 0.90),  # beyond SFT's budget: must not be used
    ]
    text = build_report(points, {"preset": "smoke", "runtime_min": 1.0, "seed": 0})
    row = next(line for line in text.splitlines() if line.startswith("| GeneralPoints-L | ood"))
    assert "-10.0" in row and "+15.0" in row and "90.0" not in row
    assert "-8.1 / +3.5" in row
    assert "RL is ahead with non-overlapping 95% intervals" in text


def test_overlapping_intervals_are_not_called_a_win():
    text = finding(
        "GeneralPoints-L",
        "id",
        p("SFT", 0, "id", 0.5),
        p("SFT", 5, "id", 0.52, 0.1),
        p("RL", 5, "id", 0.55, 0.1),
    )
    assert "does not separate" in text


def test_recognition_lines():
    points = [
        p("SFT", 0, "id", 0.2, rec=0.5),
        p("RL", 0, "id", 0.2, rec=0.5),
        p("SFT", 5, "id", 0.3, rec=0.4),
        p("RL", 5, "id", 0.3, rec=0.7),
    ]
    text = build_report(points, {"preset": "x", "runtime_min": 0.5, "seed": 1})
    assert "RL: 50.0% at 0.00 GFLOPs -> 70.0% at 5.00 GFLOPs" in text


def test_an_init_column_and_gflops_digits_are_stated():
    init = p("SFT", 0, "id", 0.5)
    text = finding("GeneralPoints-L", "id", init, init, p("RL", 56000, "id", 0.55, 0.1))
    assert "The SFT column is the init itself" in text and "RL column" not in text
    assert "0.00 / 5.60e+04 GFLOPs" in text
