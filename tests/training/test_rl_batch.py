import torch

from sftvsrl.models.loading import load_model
from sftvsrl.training.ppo_batch import action_start_token, answer_weights, collate, forward_policy_value
from sftvsrl.training.ppo_math import ValueHead
from sftvsrl.rollout import Generation, HFRolloutEngine


def test_action_start_token_any_tokenizer():
    pm = load_model("tiny-lm")
    tok = pm.tokenizer
    text = 'think: 3*8 {"formula": "3*8"}'
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    k = action_start_token(tok, ids, text, "{")
    assert tok.decode(ids[k:], skip_special_tokens=True).startswith("{")
    assert "{" not in tok.decode(ids[:k], skip_special_tokens=True)
    assert action_start_token(tok, ids, "no brace", "{") == 0
    w = answer_weights(tok, [Generation(text, [1], ids)], len(ids) + 2, 0.5, "{")
    assert w[0, :k].eq(0.5).all() and w[0, k : len(ids)].eq(1.0).all() and w[0, len(ids) :].eq(0).all()


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
    head = ValueHead(pm.model.get_input_embeddings().embedding_dim)
    with torch.no_grad():
        out = forward_policy_value(pm.model, head, batch)
        # Each row alone (no padding) must give the same answer log-prob: padding is inert.
        for i, g in enumerate(gens):
            single = forward_policy_value(pm.model, head, collate([g], pm.tokenizer.pad_token_id))
            assert torch.allclose(single["seq_logp"][0], out["seq_logp"][i], atol=1e-4)
    # Generation's own scores agree with the recomputed log-probs of the sampled tokens.
    enc = engine.encode_fn(pm, ["Say 1."])
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
        mine = forward_policy_value(pm.model, head, collate([g], 0))["token_logp"][0]
    theirs = torch.stack([torch.log_softmax(s[0], -1)[t] for s, t in zip(res.scores, ids, strict=True)])
    assert torch.allclose(mine[: len(ids)], theirs, atol=1e-4)
