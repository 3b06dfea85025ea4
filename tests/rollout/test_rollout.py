from sftvsrl.rollout import EnvPool, Generation, HFRolloutEngine, Sampling, cut_at_eos, make_envs


def test_training_pool_resets_finished_envs_at_once():
    pool = EnvPool(make_envs("sftvsrl-test/Toy-v0", {}, 2, max_turns=2), base_seed=5)
    out = pool.step({0: "x", 1: "x"})
    assert [t.done for t in out] == [False, False] and pool.turn == [1, 1]
    out = pool.step({0: "x", 1: "x"})
    assert all(t.truncated and not t.terminated for t in out)
    assert all(t.final_observation is not None for t in out)
    assert pool.active() == [0, 1] and pool.turn == [0, 0] and pool.episode == [2, 3]


def test_evaluation_pool_drops_envs_when_episodes_run_out():
    pool = EnvPool(make_envs("sftvsrl-test/Toy-v0", {}, 2, max_turns=1), episode_seeds=[10, 11, 12])
    pool.step({0: "x", 1: "x"})
    assert pool.active() == [0]  # env 0 took episode 2; env 1 has nothing left
    pool.step({0: "x"})
    assert pool.active() == []


def test_envs_at_different_turns_share_a_batch():
    pool = EnvPool(make_envs("sftvsrl-test/Toy-v0", {}, 2, max_turns=3), base_seed=0)
    target = pool.obs[0].split("Say ")[1][0]
    pool.step({0: target, 1: "x"})  # env 0 solved and restarted, env 1 is on turn 2
    assert pool.turn == [0, 1] and "[Attempt 1]" in pool.obs[1] and "[Attempt" not in pool.obs[0]


def test_cut_at_eos_and_engine_answer_ids():
    assert cut_at_eos([5, 6, 2, 0, 0], [2]) == [5, 6, 2]
    assert cut_at_eos([5, 6], [2]) == [5, 6]
    from sftvsrl.models.loading import load_model

    pm = load_model("tiny-lm")
    gens = HFRolloutEngine(pm).generate(
        ["Say 1.", "Say 2 and more"], max_new_tokens=5, temperature=1.0, do_sample=True, seed=0
    )
    again = HFRolloutEngine(pm).generate(
        ["Say 1.", "Say 2 and more"], max_new_tokens=5, temperature=1.0, do_sample=True, seed=0
    )
    assert [g.answer_ids for g in gens] == [g.answer_ids for g in again]  # seeded sampling
    for g in gens:
        assert isinstance(g, Generation) and 1 <= len(g.answer_ids) <= 5
        assert (
            pm.tokenizer.pad_token_id not in g.prompt_ids
            or pm.tokenizer.pad_token_id == pm.tokenizer.eos_token_id
        )


class CountingEngine:
    """Answers "x" to everything and records the seed of every call."""

    def __init__(self):
        self.seeds = []

    def generate(self, observations, *, max_new_tokens, temperature, do_sample, seed):
        self.seeds.append(seed)
        return [Generation("x", [1], [2]) for _ in observations]


def test_play_runs_fixed_episodes_to_the_end():
    pool = EnvPool(make_envs("sftvsrl-test/Toy-v0", {}, 2, max_turns=2), episode_seeds=[7, 8, 9])
    engine = CountingEngine()
    steps = list(pool.play(engine, Sampling(3, do_sample=False), seed=lambda k: 100 + k))
    # two envs x 2 turns, then the third episode alone for 2 turns
    assert [[t.env_index for t in s] for s in steps] == [[0, 1], [0, 1], [0], [0]]
    assert engine.seeds == [100, 101, 102, 103]
    assert all(t.generation is not None and t.generation.text == t.answer for s in steps for t in s)
    assert sorted(t.episode for s in steps for t in s if t.done) == [0, 1, 2]


def test_play_stops_after_the_given_number_of_calls_and_keeps_envs_running():
    pool = EnvPool(make_envs("sftvsrl-test/Toy-v0", {}, 3, max_turns=2), base_seed=1)
    steps = list(pool.play(CountingEngine(), Sampling(3), seed=lambda k: None, steps=5))
    assert len(steps) == 5 and all(len(s) == 3 for s in steps)
    assert pool.active() == [0, 1, 2] and pool.turn == [1, 1, 1]
