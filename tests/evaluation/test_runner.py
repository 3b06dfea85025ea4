import json

import pytest

from sftvsrl.cli import main
from sftvsrl.evaluation.runner import evaluate
from sftvsrl.evaluation.summary import answer_recognized, summarize
from sftvsrl.rollout import Generation


class ScriptedEngine:
    """Answers from a fixed function of the prompt, so outcomes are known in advance."""

    def __init__(self, answer):
        self.answer = answer
        self.batches = []

    def generate(self, observations, *, max_new_tokens, temperature, do_sample, seed):
        self.batches.append(len(observations))
        out = []
        for obs in observations:
            text = obs["text"] if isinstance(obs, dict) else obs
            out.append(Generation(self.answer(text), [1, 2], [3]))
        return out


def expert_after_one_miss(prompt: str) -> str:
    digit = prompt.split("Say ")[1][0]
    return digit if "[Attempt 1]" in prompt else "x"


def test_multi_turn_batches_and_summary():
    engine = ScriptedEngine(expert_after_one_miss)
    records, summary = evaluate(engine, "sftvsrl-test/Toy-v0", {}, episodes=5, max_turns=3, num_envs=2)
    assert [r["episode"] for r in records] == [0, 1, 2, 3, 4]
    assert all(r["num_turns"] == 2 and r["success"] for r in records)
    assert records[0]["turns"][0]["outcome"] == "no_digit"
    assert "[Attempt 1]" in records[0]["turns"][1]["prompt"]
    assert summary["successes"] == 5 and summary["mean_turns"] == 2.0
    assert summary["answer_outcomes"] == {"correct": 5, "no_digit": 5}
    assert summary["mean_return"] == pytest.approx(2.0)
    assert max(engine.batches) == 2 and sum(engine.batches) == 10


def test_truncated_episodes_count_as_failures_and_seeds_are_fixed():
    engine = ScriptedEngine(lambda p: "x")
    recs, summary = evaluate(
        engine, "sftvsrl-test/Toy-v0", {"split": "test"}, episodes=4, max_turns=2, num_envs=3
    )
    assert summary["success_rate"] == 0.0 and summary["final_outcomes"] == {"no_digit": 4}
    assert all(r["truncated"] and r["num_turns"] == 2 for r in recs)
    again, _ = evaluate(engine, "sftvsrl-test/Toy-v0", {"split": "test"}, episodes=4, max_turns=2, num_envs=1)
    assert [r["expert_answer"] for r in recs] == [r["expert_answer"] for r in again]


def test_recognition_accuracy_for_vision():
    assert answer_recognized({"outcome": "recognition_failure"}) is False
    assert answer_recognized({"outcome": "correct"}) is True
    assert answer_recognized({"recognized": None, "outcome": "x"}) is None
    engine = ScriptedEngine(lambda p: "x" if "[Attempt" not in p else p.split("Say ")[1][0])
    _, summary = evaluate(engine, "sftvsrl-test/Toy-VL-v0", {}, episodes=3, max_turns=3, num_envs=3)
    # First answers are unparsable (not assessable), second answers right: accuracy 3/3.
    assert summary["recognition_accuracy"] == 1.0 and summary["recognition_answers"] == 3
    s = summarize(
        [
            {
                "success": False,
                "final_outcome": "o",
                "return": 0.0,
                "turns": [{"outcome": "o", "recognized": False}, {"outcome": "o", "recognized": True}],
            }
        ],
        vision=True,
    )
    assert s["recognition_accuracy"] == 0.5


def test_cli_tiny_model_end_to_end(tmp_path, capsys):
    out = tmp_path / "ev"
    rc = main(
        [
            "eval",
            "--model",
            "tiny-lm",
            "--env",
            "sftvsrl-test/Toy-v0",
            "--env-kwargs",
            "split=test",
            "--episodes",
            "3",
            "--max-turns",
            "2",
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 3 and summary["model"] == "tiny-lm"
    lines = (out / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(x)["turns"] for x in lines)
    assert "success" in capsys.readouterr().out


@pytest.mark.parametrize("bf16", ["true", "false"])
def test_cli_threads_and_bf16_are_applied_and_recorded(tmp_path, bf16):
    import torch

    out = tmp_path / "ev"
    before = torch.get_num_threads()
    try:
        args = ["eval", "--model", "tiny-lm", "--env", "sftvsrl-test/Toy-v0", "--episodes", "2"]
        args += ["--max-new-tokens", "4", "--threads", "1", "--bf16", bf16, "--out", str(out)]
        assert main(args) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    runtime = json.loads((out / "summary.json").read_text())["runtime"]
    assert runtime == {"threads": 1, "bf16_autocast": bf16 == "true", "compile_rollouts": False}


def test_cli_compile_rollouts_runs_the_compiled_step_and_is_recorded(tmp_path, monkeypatch):
    """The flag reaches the decode loop (the compiler itself is stood in for: tests/rollout/test_compile.py)."""
    import sftvsrl.rollout.decode as decode

    calls = []

    def stand_in(*args):
        calls.append(1)
        return decode.decode_step(*args)

    monkeypatch.setattr(decode, "compiled_step", lambda: stand_in)
    out = tmp_path / "ev"
    args = ["eval", "--model", "tiny-lm", "--env", "sftvsrl-test/Toy-v0", "--episodes", "2", "--threads", "1"]
    assert main([*args, "--max-new-tokens", "4", "--compile-rollouts", "--out", str(out)]) == 0
    assert calls and json.loads((out / "summary.json").read_text())["runtime"]["compile_rollouts"] is True


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/no/such/model", "--env", "sftvsrl-test/Toy-v0"], "model not found"),
        (["--model", "tiny-lm", "--env", "sftvsrl/NoSuchEnv-v0"], "unknown environment"),
        (
            ["--model", "tiny-lm", "--env", "sftvsrl-test/Toy-v0", "--env-kwargs", "colour=red"],
            "cannot create",
        ),
        (
            ["--model", "tiny-lm", "--env", "sftvsrl-test/Toy-v0", "--env-kwargs", "split=val"],
            "cannot create",
        ),
        (
            ["--model", "tiny-lm", "--env", "sftvsrl-test/Toy-v0", "--threads", "0"],
            "--threads must be positive",
        ),
        (
            ["--model", "tiny-lm", "--env", "sftvsrl/VIRL-L-v0", "--env-kwargs", "city=atlantis"],
            "unknown city 'atlantis'",
        ),
        (
            ["--model", "tiny-lm", "--env", "sftvsrl/VIRL-L-v0", "--env-kwargs", "city=path:/no/such/dir"],
            "does not exist",
        ),
    ],
)
def test_cli_clear_errors(tmp_path, capsys, args, message):
    rc = main(["eval", *args, "--episodes", "1", "--out", str(tmp_path)])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_landmark_errors_count_as_recognition_failures():
    assert answer_recognized({"outcome": "landmark_error"}) is False
    assert answer_recognized({"outcome": "misrecognized_cards"}) is False
    assert answer_recognized({"outcome": "wrong_action"}) is True


def test_generalpoints_vl_recognition_accuracy_from_the_real_env():
    # Four aces are never the dealt hand of these seeds: every answer misreads the cards.
    wrong_cards = '{"cards": ["A", "A", "A", "A"], "number": [1, 1, 1, 1], "formula": "1+1+1+1"}'
    engine = ScriptedEngine(lambda p: wrong_cards)
    records, summary = evaluate(
        engine,
        "sftvsrl/GeneralPoints-VL-v0",
        {"prompt_style": "compact"},
        episodes=3,
        max_turns=2,
        num_envs=3,
    )
    assert all(r["final_outcome"].startswith("misrecognized") for r in records)
    assert summary["recognition_accuracy"] == 0.0 and summary["recognition_answers"] == 6


def test_tiny_vlm_evaluates_generalpoints_vl():
    from sftvsrl.models.loading import load_model
    from sftvsrl.rollout import HFRolloutEngine

    engine = HFRolloutEngine(load_model("tiny-vlm"))
    records, summary = evaluate(
        engine,
        "sftvsrl/GeneralPoints-VL-v0",
        {"prompt_style": "compact"},
        episodes=2,
        max_turns=1,
        num_envs=2,
        max_new_tokens=4,
    )
    assert summary["episodes"] == 2 and "recognition_accuracy" in summary
    assert all(len(r["turns"]) == 1 for r in records)


def test_a_failed_write_keeps_the_earlier_results_whole(tmp_path, monkeypatch):
    from sftvsrl import atomic
    from sftvsrl.evaluation.runner import write_results

    write_results(tmp_path, [{"seed": 0}], {"episodes": 1})
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}

    def full_disk(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_results(tmp_path, [{"seed": s} for s in range(100)], {"episodes": 100})
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before  # no temp files left either
