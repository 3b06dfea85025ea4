"""The rollout engine's decode loop against HF ``generate``: same greedy ids, sound sampling."""

import numpy as np
import pytest
import torch

from sftvsrl.models.loading import LoraSettings, load_model
from sftvsrl.rollout import HFRolloutEngine
from sftvsrl.rollout.decode import decoder_parts

PROMPTS = [
    "Say 1.",
    "x",
    "24 A1 J10 Q10 K10|2 A 3 6|{cards,number,formula}=",
    "a longer prompt, so that the batch is padded on the left by a good many positions",
    "hello there",
    "[Attempt 1]\nYour answer: 1+2\nFeedback: wrong.",
]


def sharp_lm():
    """tiny-lm with its matrices redrawn (seeded, std 0.1) so that greedy answers depend on
    what the model attends to: the untrained default repeats one token whatever its cache
    holds, so a wrong cache would still give HF generate's ids."""
    pm = load_model("tiny-lm")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in pm.model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.1, generator=gen)
    return pm


@pytest.fixture(scope="module")
def lm():
    return sharp_lm()


def greedy(pm, observations, backend, **kw):
    engine = HFRolloutEngine(pm, backend=backend, **kw)
    return engine.generate(observations, max_new_tokens=24, temperature=1.0, do_sample=False, seed=0)


def test_loop_is_used_for_llama_models(lm):
    assert HFRolloutEngine(lm).uses_loop()
    assert not HFRolloutEngine(lm, backend="generate").uses_loop()
    with pytest.raises(ValueError):
        HFRolloutEngine(lm, backend="vllm")


@pytest.mark.parametrize("batch_size", [64, 2])  # one batch; length buckets of two
@pytest.mark.parametrize("grow", [None, 5])  # the default; a cache that grows every 5 steps
def test_greedy_ids_equal_hf_generate(lm, batch_size, grow, monkeypatch):
    import sftvsrl.rollout.decode as decode

    if grow is not None:
        monkeypatch.setattr(decode, "GROW_SLOTS", grow)
    ref = greedy(lm, PROMPTS, "generate")
    out = greedy(lm, PROMPTS, "loop", batch_size=batch_size)
    assert [g.prompt_ids for g in out] == [g.prompt_ids for g in ref]
    assert [g.answer_ids for g in out] == [g.answer_ids for g in ref]
    assert [g.text for g in out] == [g.text for g in ref]


def test_greedy_ids_equal_hf_generate_with_lora(lm):
    pm = load_model("tiny-lm", lora=LoraSettings(r=4, target_modules=["q_proj", "v_proj", "down_proj"]))
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for name, p in pm.model.named_parameters():
            if "lora_B" in name:  # fresh adapters are zero; make them change the answers
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    assert decoder_parts(pm.model) is not None
    ref = greedy(pm, PROMPTS, "generate")
    assert [g.answer_ids for g in ref] != [g.answer_ids for g in greedy(lm, PROMPTS, "generate")]
    assert [g.answer_ids for g in greedy(pm, PROMPTS, "loop")] == [g.answer_ids for g in ref]


def test_greedy_ids_equal_hf_generate_for_the_vlm():
    pm = load_model("tiny-vlm")
    rng = np.random.default_rng(0)
    obs = [{"text": p, "image": rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)} for p in PROMPTS[:4]]
    ref = greedy(pm, obs, "generate")
    out = greedy(pm, obs, "loop", batch_size=3)
    assert [g.answer_ids for g in out] == [g.answer_ids for g in ref]
    assert all(pm.image_token_id not in g.answer_ids for g in out)
    for g, r in zip(out, ref, strict=True):
        assert torch.equal(g.extras["pixel_values"], r.extras["pixel_values"])


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(lm):
    engine = HFRolloutEngine(lm, batch_size=4)
    kw = dict(max_new_tokens=16, temperature=1.0, do_sample=True)
    state = torch.random.get_rng_state()
    a = engine.generate(PROMPTS, seed=3, **kw)
    assert torch.equal(state, torch.random.get_rng_state())
    b = engine.generate(PROMPTS, seed=3, **kw)
    c = engine.generate(PROMPTS, seed=4, **kw)
    assert [g.answer_ids for g in a] == [g.answer_ids for g in b]
    assert [g.answer_ids for g in a] != [g.answer_ids for g in c]


def test_sampled_tokens_are_in_the_support_and_ids_rebuild_the_sequence(lm):
    gens = HFRolloutEngine(lm).generate(PROMPTS, max_new_tokens=20, temperature=0.7, do_sample=True, seed=0)
    eos = lm.tokenizer.eos_token_id
    for g in gens:
        assert 1 <= len(g.answer_ids) <= 20
        assert eos not in g.answer_ids[:-1]  # cut right after the first eos
        ids = torch.tensor([g.prompt_ids + g.answer_ids])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(input_ids=ids).logits[0, :-1] / 0.7, -1)
        n = len(g.prompt_ids)
        taken = logp[n - 1 :].gather(1, torch.tensor(g.answer_ids)[:, None])
        assert torch.isfinite(taken).all()  # every sampled token had probability > 0


@pytest.mark.parametrize("prompt", ["Say 1.", "A prompt long enough that its repeats share a prefix: say 1."])
def test_first_token_distribution_matches_softmax_over_temperature(prompt):
    pm = sharp_lm()
    with torch.no_grad():
        pm.model.model.norm.weight.mul_(12.0)  # a peaked distribution, so few samples tell
    temperature, rows, seeds = 0.8, 400, 5
    with torch.no_grad():
        from sftvsrl.models.encoding import encode_prompts

        logits = pm.model(**encode_prompts(pm, [prompt])).logits[0, -1]
    p = torch.softmax(logits / temperature, -1)
    p_t1 = torch.softmax(logits, -1)
    engine = HFRolloutEngine(pm, batch_size=rows)
    counts = torch.zeros_like(p)
    for seed in range(seeds):
        for g in engine.generate([prompt] * rows, max_new_tokens=1, temperature=temperature, seed=seed):
            counts[g.answer_ids[0]] += 1
    emp = counts / counts.sum()
    top = torch.argsort(p, descending=True)[:6]

    def binned(q):  # the 6 likeliest tokens and the rest
        return torch.cat([q[top], (1 - q[top].sum()).reshape(1)])

    tv = 0.5 * (binned(emp) - binned(p)).abs().sum()
    tv_t1 = 0.5 * (binned(emp) - binned(p_t1)).abs().sum()
    assert p.max() > 0.2  # the check is meaningful
    assert tv < 0.05, (binned(emp), binned(p))
    assert tv < tv_t1  # the temperature is applied


def test_min_new_tokens_and_early_stop():
    pm = sharp_lm()
    eos = pm.tokenizer.eos_token_id
    bias = torch.zeros(pm.model.config.vocab_size)
    bias[eos] = 50.0  # eos is by far the likeliest token everywhere
    handle = pm.model.lm_head.register_forward_hook(lambda m, i, o: o + bias)
    try:
        engine = HFRolloutEngine(pm)
        out = engine.generate(PROMPTS, max_new_tokens=8, do_sample=False)
        assert all(g.answer_ids == [eos] for g in out)  # every row ends at once: one step
        pm.model.generation_config.min_new_tokens = 3
        out = engine.generate(PROMPTS, max_new_tokens=8, do_sample=True, seed=0)
        ref = HFRolloutEngine(pm, backend="generate").generate(PROMPTS, max_new_tokens=8, do_sample=False)
        assert all(len(g.answer_ids) == 4 and g.answer_ids[-1] == eos for g in out)
        assert all(len(g.answer_ids) == 4 for g in ref)
    finally:
        handle.remove()


def test_under_bf16_autocast_each_greedy_token_is_the_models_argmax(monkeypatch):
    """Under autocast the loop keeps its cache in bf16 with keys transposed in memory. bf16
    rounds differently from HF's attention, so ids may part from HF generate's after a near
    tie; instead every token must be the argmax, up to bf16 rounding, of the model's own
    forward over prompt + answer so far. Distinct prompts with rows ending (and leaving the
    batch) at different steps, a shared prefix, and GRPO-like groups."""
    import sftvsrl.rollout.decode as decode

    monkeypatch.setattr(decode, "GROW_SLOTS", 5)  # the cache grows, also after rows have left
    pm = sharp_lm()
    eos = pm.tokenizer.eos_token_id
    bias = torch.zeros(pm.model.config.vocab_size)
    bias[eos] = 3.0  # rows end at different steps
    selected = []
    real = decode._select_rows

    def spy(t, index):
        selected.append(t.stride(-2) == 1)  # a key cache in the transposed layout
        return real(t, index)

    monkeypatch.setattr(decode, "_select_rows", spy)
    handle = pm.model.lm_head.register_forward_hook(lambda m, i, o: o + bias)
    distinct = PROMPTS + [p[::-1] for p in PROMPTS] + [p.upper() for p in PROMPTS]
    grouped = [p for p in PROMPTS[:4] for _ in range(4)]
    gaps, lengths = [], set()
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            for prompts in (distinct, shared_prefix_prompts(), grouped):
                for g in greedy(pm, prompts, "loop"):
                    logits = pm.model(input_ids=torch.tensor([g.prompt_ids + g.answer_ids])).logits[0].float()
                    steps = logits[len(g.prompt_ids) - 1 : -1]
                    chosen = steps.gather(1, torch.tensor(g.answer_ids)[:, None]).squeeze(1)
                    gaps.append(float((steps.max(dim=1).values - chosen).max()))
                    lengths.add(len(g.answer_ids))
    finally:
        handle.remove()
    assert max(gaps) < 0.5  # bf16 rounding is ~0.1 at these logits (~5-10); a wrong cache is 6+
    assert 1 in lengths and 24 in lengths and any(selected)  # ended rows left the transposed cache


def test_empty_batch_and_zero_tokens(lm):
    engine = HFRolloutEngine(lm)
    assert engine.generate([], max_new_tokens=4, do_sample=False) == []
    out = engine.generate(PROMPTS[:2], max_new_tokens=0, do_sample=False)
    assert [g.answer_ids for g in out] == [[], []] and out[0].prompt_ids


def test_rows_that_end_leave_the_batch_and_the_others_still_match_generate():
    pm = sharp_lm()
    eos = pm.tokenizer.eos_token_id
    bias = torch.zeros(pm.model.config.vocab_size)
    bias[eos] = 3.0  # tuned so that some rows end at once, some later, some never
    prompts = PROMPTS + [p[::-1] for p in PROMPTS] + [p.upper() for p in PROMPTS]
    handle = pm.model.lm_head.register_forward_hook(lambda m, i, o: o + bias)
    try:
        ref = greedy(pm, prompts, "generate")
        out = greedy(pm, prompts, "loop")
    finally:
        handle.remove()
    lengths = {len(g.answer_ids) for g in ref}
    assert 1 in lengths and 24 in lengths and len(lengths) >= 3  # compaction happened mid-answer
    assert [g.answer_ids for g in out] == [g.answer_ids for g in ref]


def shared_prefix_prompts():
    """GeneralPoints-like prompts: a long common start, then each row's own hand, some of
    them several times (a GRPO group), one of them a prefix of another's prompt."""
    head = "24 A1 J10 Q10 K10 are the values; use each card once.|"
    hands = ["2 A 3 6", "K K 5 9", "10 4 7 Q", "3 3 8 8"]
    rows = [f"{head}{h}|{{cards,number,formula}}=" for h in hands]
    return [rows[0]] * 3 + rows[1:] + [rows[2]] * 2 + [head, head + "x"]


def test_shared_prefix_and_repeated_prompts_keep_hf_generate_greedy_ids(lm, monkeypatch):
    import sftvsrl.rollout.decode as decode

    prompts = shared_prefix_prompts()
    seen = []
    real = decode.DecodeLoop._prefill

    def spy(self, ids, mask, extras):
        out = real(self, ids, mask, extras)
        prefix = out.prefix
        seen.append(
            (ids.shape[0], 0 if prefix is None else prefix.keys[0].shape[2], prefix and prefix.groups)
        )
        return out

    monkeypatch.setattr(decode.DecodeLoop, "_prefill", spy)
    ref = greedy(lm, prompts, "generate")
    out = greedy(lm, prompts, "loop")
    (rows, shared, _), *_ = seen
    assert rows == len(prompts) and shared >= decode.MIN_SHARED_PREFIX  # the shared path ran
    assert [g.prompt_ids for g in out] == [g.prompt_ids for g in ref]
    assert [g.answer_ids for g in out] == [g.answer_ids for g in ref]
    # A batch of one repeated prompt shares all of it but its last token.
    seen.clear()
    again = greedy(lm, [prompts[3]] * 4, "loop")
    assert seen[0][1:] == (len(ref[3].prompt_ids) - 1, 1)
    assert [g.answer_ids for g in again] == [ref[3].answer_ids] * 4


def test_shared_prefix_with_grouped_query_attention_and_sampling(tmp_path):
    """Fewer key/value heads than query heads (as in SmolLM2), greedy and sampled."""
    from transformers import LlamaForCausalLM

    from sftvsrl.models.tiny import tiny_llama_config
    from sftvsrl.models.tokenizer import build_char_tokenizer

    tok = build_char_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(tok, num_attention_heads=4, num_key_value_heads=2))
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    pm = load_model(tmp_path)
    assert pm.model.config.num_key_value_heads == 2
    prompts = shared_prefix_prompts()
    ref = greedy(pm, prompts, "generate")
    assert [g.answer_ids for g in greedy(pm, prompts, "loop")] == [g.answer_ids for g in ref]
    sampled = HFRolloutEngine(pm).generate(prompts, max_new_tokens=12, do_sample=True, seed=1)
    assert sampled[0].answer_ids != sampled[1].answer_ids or sampled[1].answer_ids != sampled[2].answer_ids
    assert all(1 <= len(g.answer_ids) <= 12 for g in sampled)


def test_common_prefix():
    from sftvsrl.rollout.decode import common_prefix

    assert common_prefix([]) == 0
    assert common_prefix([[1, 2, 3]]) == 3
    assert common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix([[5], [1, 2]]) == 0


def test_grpo_groups_share_their_prompt_and_leave_the_batch_whole(monkeypatch):
    """Hands asked 3 times each in a row (a GRPO rollout): each group keeps its prompt once;
    rows end at different steps, groups leave once all their rows have; ids equal generate's."""
    import sftvsrl.rollout.decode as decode

    pm = sharp_lm()
    eos = pm.tokenizer.eos_token_id
    bias = torch.zeros(pm.model.config.vocab_size)
    bias[eos] = 1.0
    head = "24 A1 J10 Q10 K10|"  # short against the hands, so per-hand groups share most
    hands = [
        head + f"{h}|each card once, {h} in some order|{{cards,number,formula}}="
        for h in ("2 A 3 6", "K K 5 9", "10 4 7 Q", "3 3 8 8", "5", "6 6 6 6 6 6", "x", "A A")
    ]
    prompts = [h for h in hands for _ in range(3)]
    decisions = []  # (done per row, rows kept, groups kept) each time rows left the batch
    pick = decode.DecodeLoop._rows_to_keep

    def spy(done, prefix):
        keep, groups = pick(done, prefix)
        if keep is not None:
            decisions.append((done.clone(), keep.tolist(), None if groups is None else groups.tolist()))
        return keep, groups

    monkeypatch.setattr(decode.DecodeLoop, "_rows_to_keep", staticmethod(spy))
    handle = pm.model.lm_head.register_forward_hook(lambda m, i, o: o + bias)
    try:
        from sftvsrl.models.encoding import encode_prompts

        e = encode_prompts(pm, prompts)
        rows = [r[m.bool()].tolist() for r, m in zip(e["input_ids"], e["attention_mask"], strict=True)]
        size, shared = decode.share_groups(rows)
        assert size == 3 and shared == [len(rows[3 * g]) - 1 for g in range(len(hands))]
        ref = greedy(pm, prompts, "generate")
        out = greedy(pm, prompts, "loop")
    finally:
        handle.remove()
    lengths = [len(g.answer_ids) for g in ref]
    assert 24 in lengths and min(lengths) < 24  # rows ended mid-answer, groups left the batch
    assert [g.answer_ids for g in out] == [g.answer_ids for g in ref]
    assert decisions, "no group ever left the batch"
    for done, keep, groups in decisions:
        by_group = done.view(-1, 3)
        left = [g for g in range(by_group.shape[0]) if g not in groups]
        assert left and all(by_group[g].all() for g in left)  # only groups whose rows all ended
        assert all(not by_group[g].all() for g in groups)  # and every such group
        assert keep == [3 * g + r for g in groups for r in range(3)]  # whole groups, rows in order


def test_sampled_grpo_groups_leave_only_when_every_row_has_ended(monkeypatch):
    """Sampled rows of one group end at different steps: ended rows of a group still running
    stay (computed, ignored) and a group leaves only once all its rows have ended, so every
    answer runs to its eos or to the token limit."""
    import sftvsrl.rollout.decode as decode

    pm = sharp_lm()
    eos = pm.tokenizer.eos_token_id
    bias = torch.zeros(pm.model.config.vocab_size)
    bias[eos] = 4.0  # eos likely but not certain at each step: rows of a group part ways
    hands = [
        f"24 A1 J10 Q10 K10|{h}|each card once|{{cards,number,formula}}="
        for h in ("2 A 3 6", "K K 5 9", "10 4 7 Q", "3 3 8 8", "5 5 5 A", "J Q K A")
    ]
    prompts = [h for h in hands for _ in range(4)]
    decisions = []
    pick = decode.DecodeLoop._rows_to_keep

    def spy(done, prefix):
        keep, groups = pick(done, prefix)
        if prefix is not None and prefix.groups > 1:
            decisions.append((done.clone(), groups))
        return keep, groups

    monkeypatch.setattr(decode.DecodeLoop, "_rows_to_keep", staticmethod(spy))
    handle = pm.model.lm_head.register_forward_hook(lambda m, i, o: o + bias)
    try:
        engine = HFRolloutEngine(pm, backend="loop")
        out = engine.generate(prompts, max_new_tokens=24, temperature=1.0, do_sample=True, seed=3)
    finally:
        handle.remove()
    parted = [d for d, _ in decisions if (d.view(-1, 4).any(1) & ~d.view(-1, 4).all(1)).any()]
    assert parted, "no group had rows that ended at different steps"
    assert any(g is not None for _, g in decisions), "no group ever left the batch"
    for done, groups in decisions:
        if groups is not None:
            finished = done.view(-1, 4).all(1)
            assert sorted(groups.tolist()) == (~finished).nonzero().squeeze(1).tolist()
    for g in out:
        assert len(g.answer_ids) == 24 or g.answer_ids[-1] == eos, g.answer_ids


def test_share_groups_picks_the_split_that_saves_most():
    from sftvsrl.rollout.decode import MIN_SHARED_PREFIX, share_groups

    n = MIN_SHARED_PREFIX
    head = list(range(100, 100 + n))
    a, b = head + list(range(40)), head + list(range(50, 90))
    assert share_groups([a, a, b, b]) == (2, [len(a) - 1, len(b) - 1])  # per-prompt groups
    c, d = head + head + [1, 2], head + head + [3, 4]
    assert share_groups([c, d, d, c]) == (4, [2 * n])  # only the whole batch shares
    assert share_groups([[1, 2, 3], [1, 2, 3]]) == (0, [])  # too short to pay
    assert share_groups([a]) == (0, [])
    assert share_groups([a, a, a]) == (3, [len(a) - 1])


def test_sampling_never_picks_a_token_of_probability_zero(lm, monkeypatch):
    from sftvsrl.rollout.decode import DecodeLoop

    loop = DecodeLoop(lm.model, [lm.tokenizer.eos_token_id], lm.tokenizer.pad_token_id, None, min_new=0)
    logits = torch.full((4000, 10), -float("inf"))
    logits[:, 2], logits[:, 5] = 0.0, 1.0  # two tokens possible, the last ones not
    gen = torch.Generator().manual_seed(0)
    picked = loop._pick(logits.clone(), 0, 1.0, True, gen)
    assert set(picked.tolist()) == {2, 5}
    share = (picked == 5).float().mean().item()
    assert abs(share - torch.softmax(torch.tensor([0.0, 1.0]), 0)[1].item()) < 0.03
    # A draw that rounds up to the CDF's total still lands on the last token of positive probability.
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.ones(4000, 1, dtype=torch.float64))
    assert set(loop._pick(logits.clone(), 0, 1.0, True, gen).tolist()) == {5}
