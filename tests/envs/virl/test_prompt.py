"""The bounded compact prompt: every prompt of a route, with a revision turn and the answer,
fits a 1024-position char-level model; the window keeps what a decision needs."""

import random

import pytest

from sftvsrl.envs.virl import prompt as P
from sftvsrl.envs.virl.answers import make_wrong_fn
from sftvsrl.envs.virl.env import VIRLEnv
from sftvsrl.models.tokenizer import build_char_tokenizer

LIMIT = 1024  # tiny-lm's positions
MAX_NEW_TOKENS = 80  # the longest answer the study's presets let the tiny model write
# An 80-character invalid answer: its echo and the feedback naming the action space are
# the longest revision turn a model can cause.
BAD = '{"action":"turn_direction(' + "q" * 52 + ')"}'
SPECIALS = 7  # <s> U: \n A: </s>


def walk(env, seed, rng, wrong):
    """Every (prompt, expert answer) of a route: each step's first prompt, and the second
    turn's prompt after a wrong answer (sequential revision, max_turns=2)."""
    obs, info = env.reset(seed=seed)
    done = False
    while not done:
        yield obs, info["expert_answer"], False
        answer = wrong(info, rng) if rng.random() < 0.7 else BAD
        obs, reward, _, truncated, info2 = env.step(answer)
        assert reward < 1 and not truncated
        yield obs, info2["expert_answer"], answer == BAD
        obs, reward, done, truncated, info = env.step(info2["expert_answer"])
        assert reward == 1.0 and not truncated  # the expert still scores full reward


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("action_space", ["absolute", "relative"])
def test_bounded_compact_fits_tiny_lm_over_many_routes(split, action_space):
    env = VIRLEnv(split=split, action_space=action_space, prompt_style="compact", max_turns=2)
    wrong = make_wrong_fn({"action_space": action_space})
    rng = random.Random(1)
    row = generated = 0
    for seed in range(0, 3000, 3):
        for prompt, answer, bad in walk(env, seed, rng, wrong):
            if not bad:  # an expert data row (revision rows echo the data's wrong answers)
                row = max(row, len(prompt) + len(answer))
            generated = max(generated, len(prompt) + MAX_NEW_TOKENS)  # a model's answer
    assert 700 < row + SPECIALS <= LIMIT - 128, row  # SFT rows: well inside the limit
    assert generated + SPECIALS <= LIMIT - 24, generated  # even after an 80-char bad answer


def test_char_tokens_are_characters():
    tok = build_char_tokenizer()
    env = VIRLEnv(prompt_style="compact")
    obs, _ = env.reset(seed=42)
    assert len(tok(obs, add_special_tokens=False)["input_ids"]) == len(obs)


def test_window_keeps_the_last_pairs_the_instruction_around_progress_and_the_current_view():
    env = VIRLEnv(prompt_style="compact", compact_window=2)
    obs, info = env.reset(seed=42)
    sentences = env.route.compact_sentences
    assert "H:-" in obs and f"I:{'; '.join(sentences[:3])}; .." in obs
    for _ in range(5):
        obs, _, _, _, info = env.step(info["expert_answer"])
    lines = obs.split("\n")
    assert lines[0].startswith("Walk the route. A=forward()|turn_direction(X)|stop() X=north|")
    hist = lines[2]
    assert hist.startswith("H:.. O4:") and " O5:" in hist and " A5:" in hist and "O3:" not in hist
    assert "F:" not in hist  # history entries: where the walker stood and faced only
    done = env.route.plan[4].sentence
    assert lines[1] == "I:" + "; ".join(
        [".."] * (done > 0) + sentences[done : done + 3] + [".."] * (done + 3 < len(sentences))
    )
    current = env.route.plan[5].sentence
    assert sentences[current] in lines[1]  # the sentence being executed is always shown
    assert lines[3].startswith("O:@") and "F:" in lines[3]


def test_current_sentence_is_always_in_the_window():
    for action_space in ("absolute", "relative"):
        env = VIRLEnv(prompt_style="compact", action_space=action_space)
        for seed in range(300):
            obs, info = env.reset(seed=seed)
            k, done = 0, False
            while not done:
                sentence = env.route.compact_sentences[env.route.plan[k].sentence]
                assert sentence in obs.split("\n")[1]
                obs, _, done, _, info = env.step(info["expert_answer"])
                k += 1


def test_unbounded_window_is_the_whole_route_and_full_style_is_unchanged():
    whole = VIRLEnv(prompt_style="compact", compact_window=None)
    bounded = VIRLEnv(prompt_style="compact", compact_window=0)
    full = VIRLEnv(prompt_style="full")
    for env in (whole, bounded, full):
        obs, info = env.reset(seed=42)
        for _ in range(6):
            obs, _, _, _, info = env.step(info["expert_answer"])
        env.last = obs
    assert (
        f"I:{whole.route.compact_instruction}\n" in whole.last
        and " O1:" not in whole.last
        and "O1:" in whole.last
    )
    assert "H:..\n" in bounded.last
    assert len(bounded.last) < len(whole.last)
    assert full.last.startswith("[Task]") and "O_1:" in full.last and "O_6:" in full.last
    assert full.route.instruction in full.last


def test_budget_drops_old_pairs_only_when_needed(monkeypatch):
    env = VIRLEnv(prompt_style="compact", compact_window=5)
    obs, info = env.reset(seed=42)
    for _ in range(6):
        obs, _, _, _, info = env.step(info["expert_answer"])
    assert len(obs) <= P.COMPACT_MAX_CHARS
    monkeypatch.setattr(P, "COMPACT_MAX_CHARS", 10_000)
    wide = P.build_prompt(env.route, env._history, env._current_text(), "absolute", "compact", False, 5)
    assert wide.count(" A") >= obs.count(" A") and "O2:" in wide


@pytest.mark.parametrize("window", [-1, True, "two"])
def test_bad_window(window):
    with pytest.raises((ValueError, TypeError)):
        VIRLEnv(prompt_style="compact", compact_window=window)
