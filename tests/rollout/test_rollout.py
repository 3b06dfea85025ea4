from sftvsrl.training.rollout import EnvPool, Generation, HFRolloutEngine, cut_at_eos, make_envs


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
