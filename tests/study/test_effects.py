"""Changes from the init, RL - SFT with Newcombe's interval, matched ID gain, findings, figures."""

import pytest

from sftvsrl.evaluation.wilson import newcombe_interval, wilson_interval
from sftvsrl.study.curves import CurvePoint
from sftvsrl.study.effects import (
    counts,
    effects,
    effects_section,
    matched_compute,
    matched_id_gain,
    pooled,
    seeds_table,
    task_findings,
)

N = 100


def pt(method, step, gflops, split, k, rule=None):
    lo, hi = wilson_interval(k, N)
    extra = {}
    if rule is not None:
        r_lo, r_hi = wilson_interval(rule, N)
        extra = dict(rule_following=rule / N, rule_following_ci_low=r_lo, rule_following_ci_high=r_hi)
        extra["rule_following_n"] = N
    return CurvePoint("GeneralPoints", "L", method, step, gflops, split, k / N, lo, hi, N, **extra)


def study(ood_sft=(30, 20, 10), ood_rl=(30, 40, 60), seen_sft=(50, 70, 90), seen_rl=(50, 60, 70)):
    points = []
    for method, ood, seen in (("SFT", ood_sft, seen_sft), ("RL", ood_rl, seen_rl)):
        for i, (o, s) in enumerate(zip(ood, seen, strict=True)):
            points += [
                pt(method, 10 * i, 1.0 + i, "ood", o, rule=40 if i == 0 else 40 + 5 * i),
                pt(method, 10 * i, 1.0 + i, "id_seen", s),
            ]
    return points


def test_rl_minus_sft_is_the_difference_of_final_proportions():
    points = study()
    pair = matched_compute(points, "GeneralPoints-L")
    assert (pair.sft_step, pair.rl_step) == (20, 20)
    e = next(e for e in effects(points, "GeneralPoints-L", pair) if (e.split, e.metric) == ("ood", "success"))
    assert counts(points[0]) == (30, N)
    assert e.sft_change.value == pytest.approx(-0.2) and e.rl_change.value == pytest.approx(0.3)
    d = e.rl_minus_sft  # (RL change) - (SFT change) = 0.5 = p_RL - p_SFT
    assert d.value == pytest.approx(e.rl_change.value - e.sft_change.value)
    assert (d.value, d.low, d.high) == pytest.approx(newcombe_interval(60, N, 10, N))
    assert d.excludes_zero
    metrics = {e.metric for e in effects(points, "GeneralPoints-L", pair)}
    assert metrics == {"success", "rule_following"}


def test_matched_id_gain_picks_the_sft_checkpoint_with_the_closest_seen_gain():
    points = study()
    pair = matched_id_gain(points, "GeneralPoints-L")
    # RL's final id_seen change is +20; SFT's are 0, +20, +40: step 10
    assert (pair.rl_step, pair.sft_step) == (20, 10)
    assert "+20.0 pts" in pair.note


def test_findings_state_what_was_reproduced_with_intervals():
    text = " ".join(task_findings(study(), "GeneralPoints-L"))
    assert "reproduced here" in text and "RL − SFT = +50.0 [" in text
    flat = study(ood_sft=(30, 30, 31), ood_rl=(30, 29, 30))
    text = " ".join(task_findings(flat, "GeneralPoints-L", tried="2 RL updates"))
    assert "does not resolve" in text and "Neither method moved" in text
    assert "tried: 2 RL updates" in text and "rule following at the init 40.0%" in text
    section = effects_section(study(), {"GeneralPoints-L": "ood_vs_id_gain_GeneralPoints-L.png"})
    assert "matched compute" in section and "matched ID gain" in section and "ood_vs_id_gain" in section


def test_seeds_pool_counts():
    assert pooled([(3, 10), (5, 10)]) == (8, 20) and pooled([(1, 2), None]) is None
    rows = seeds_table({0: study(), 1: study(ood_rl=(30, 40, 40))})
    pooled_row = next(r for r in rows if "| ood | **pooled**" in r)
    d = newcombe_interval(100, 2 * N, 20, 2 * N)
    assert f"{100 * d[0]:+.1f} [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]" in pooled_row


def test_new_figures(tmp_path):
    from sftvsrl.study.plots import plot_ood_vs_id_gain, plot_stage1

    path = plot_ood_vs_id_gain(study(), tmp_path / "gain.png", "GeneralPoints-L")
    assert path.read_bytes()[:4] == b"\x89PNG"
    st1 = [
        pt("stage1", s, s / 10, sp, k, rule=k)
        for s, k in ((10, 5), (20, 20), (30, 40))
        for sp in ("id_seen", "id", "ood")
    ]
    assert plot_stage1(st1, tmp_path / "st1.png", 20).stat().st_size > 1000


def test_the_seeds_report_pools_the_fine_metrics_too():
    from sftvsrl.study.effects import build_seeds_report

    text = build_seeds_report({0: study(), 1: study()}, {"preset": "x"})
    assert "### rule following (% of answers)" in text
    fine = text[text.index("### rule following") :]
    # matched compute: step 20 of both, rule following 50/100 per seed; pooled 100 of 200, RL − SFT 0
    assert "| GeneralPoints-L | ood | **pooled** | 40.0 [" in fine and "| 50.0 [" in fine and "+0.0 [" in fine


def test_the_seeds_report_leaves_out_metrics_a_task_does_not_have():
    from sftvsrl.study.effects import build_seeds_report

    text = build_seeds_report({0: study()}, {"preset": "x"})
    fine = text[text.index("### rule following") :]
    assert "id_seen | 0 |" not in fine  # the toy study has rule following on ood only
