import argparse
import io

from sftvsrl.envs.virl import play


def run_play(monkeypatch, capsys, text, *extra):
    parser = argparse.ArgumentParser()
    play.add_arguments(parser)
    args = parser.parse_args(["--seed", "1", *extra])
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code = play.run(args)
    return code, capsys.readouterr().out


def test_eof_exits_cleanly(monkeypatch, capsys):
    code, out = run_play(monkeypatch, capsys, "")
    assert code == 0 and "[Instruction]" in out and "Bye." in out


def test_walk_with_hints_to_the_goal(monkeypatch, capsys):
    import gymnasium as gym

    import sftvsrl  # noqa: F401

    env = gym.make("sftvsrl/VIRL-L-v0", action_space="relative")
    _, info = env.reset(seed=1)
    lines = ["?"]
    done = False
    import json

    while not done:
        action = json.loads(info["expert_answer"])["action"]
        # A person types the bare direction or the bare action.
        lines.append(action[len("turn_direction(") : -1] if action.startswith("turn_direction(") else action)
        _, _, te, tr, info = env.step(info["expert_answer"])
        done = te or tr
    code, out = run_play(monkeypatch, capsys, "\n".join(lines) + "\n", "--action-space", "relative")
    assert code == 0 and "Route complete!" in out and "[wrong" not in out


def test_vision_play_saves_views(monkeypatch, capsys, tmp_path):
    code, out = run_play(monkeypatch, capsys, "forward\nq\n", "--vl", "--image-dir", str(tmp_path))
    assert code == 0 and list(tmp_path.glob("virl_view_*.png"))


def test_to_answer_forms():
    assert play.to_answer("left", "relative", None) == '{"action": "turn_direction(left)"}'
    assert play.to_answer("forward", "absolute", []) == '{"landmarks": [], "action": "forward"}'
    assert play.to_answer('{"action": "stop()"}', "absolute", None) == '{"action": "stop()"}'
