import torch

from sftvsrl.models.encoding import encode_prompts
from sftvsrl.models.loading import load_model
from sftvsrl.rollout import Generation, HFRolloutEngine, encode_prompt
from sftvsrl.training.ppo import ActorCritic, ValueHead
from sftvsrl.training.rl_batch import Policy, action_start_token, answer_weights, collate


def test_action_start_token_any_tokenizer():
    pm = load_model("tiny-lm")
    tok = pm.tokenizer
    text = 'think: 3*8 {"formula": "3*8"}'
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    k = action_start_token(tok, ids, text, "{")
    assert tok.decode(ids[k:], skip_special_tokens=True).startswith("{")
    assert "{" not in tok.decode(ids[:k], skip_special_tokens=True)
    assert action_start_token(tok, ids, "no brace", "{") == 0
    (w,) = answer_weights(tok, [Generation(text, [1], ids)], 0.5, "{")
    assert len(w) == len(ids) and w[:k].eq(0.5).all() and w[k:].eq(1.0).all()


def test_collate_layout_and_logprobs_match_generation_scores():
    pm = load_model("tiny-lm")
    engine = HFRolloutEngine(pm)
    gens = engine.generate(
        ["Say 1.", "Say 22222, then more text"], max_new_tokens=5, temperature=1.0, do_sample=True, seed=3
    )
    batch = collate(gens, pm.tokenizer.pad_token_id)
    P = batch["prompt_width"]
    assert batch["input_ids"][0, P - len(gens[0].prompt_ids) : P].tolist() == gens[0].prompt_ids
    assert batch["input_ids"][1, P : P + len(gens[1].answer_ids)].tolist() == gens[1].answer_ids
    policy = Policy(pm.model, pm.tokenizer.pad_token_id, micro_batch_size=2)
    with torch.no_grad():
        out = policy.forward(batch)
        # Each row alone (no padding) must give the same answer log-prob: padding is inert.
        for i, g in enumerate(gens):
            single = policy.forward(collate([g], pm.tokenizer.pad_token_id))
            assert torch.allclose(single.seq_logp[0], out.seq_logp[i], atol=1e-4)
    rows = policy.token_logprobs(gens)
    assert [len(r) for r in rows] == [len(g.answer_ids) for g in gens]
    assert torch.allclose(rows[1], out.token_logp[1, : len(gens[1].answer_ids)], atol=1e-5)
    # Generation's own scores agree with the recomputed log-probs of the sampled tokens.
    enc = dict(encode_prompts(pm, ["Say 1."]))
    with torch.no_grad():
        res = pm.model.generate(
            **enc,
            max_new_tokens=3,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            **pm.generation_kwargs(),
        )
    ids = res.sequences[0, enc["input_ids"].shape[1] :].tolist()
    g = Generation("", enc["input_ids"][0].tolist(), ids)
    with torch.no_grad():
        mine = policy.forward(collate([g], 0)).token_logp[0]
    theirs = torch.stack([torch.log_softmax(s[0], -1)[t] for s, t in zip(res.scores, ids, strict=True)])
    assert torch.allclose(mine[: len(ids)], theirs, atol=1e-4)


def test_actor_critic_values_of_steps_and_of_prompts_agree():
    """A step's value is read at its last prompt token, so it equals the value of its prompt alone."""
    pm = load_model("tiny-lm")
    head = ValueHead(pm.model.get_input_embeddings().embedding_dim)
    torch.nn.init.normal_(head.net[2].weight)
    agent = ActorCritic(pm.model, head, pm.tokenizer.pad_token_id, micro_batch_size=2)
    gens = HFRolloutEngine(pm).generate(["Say 1.", "Say 2.", "Say 3 now"], max_new_tokens=3, seed=0)
    weights = answer_weights(pm.tokenizer, gens, 1.0, "{")
    logp, values = agent.logprobs_and_values(gens, weights)
    assert logp.shape == values.shape == (3,)
    prompts = agent.values([encode_prompt(pm, o) for o in ["Say 1.", "Say 2.", "Say 3 now"]])
    assert torch.allclose(values, prompts, atol=1e-5)
    assert agent.values([]).shape == (0,)
