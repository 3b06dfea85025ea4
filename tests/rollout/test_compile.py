"""The decode loop's compiled step (``HFRolloutEngine(compile=True)``) against the uncompiled
one: the same greedy ids, one graph for a whole rollout, and a fallback where compiling fails."""

import warnings

import pytest
import torch

import sftvsrl.rollout.decode as decode
from sftvsrl.rollout import HFRolloutEngine
from tests.rollout.test_engine import PROMPTS, shared_prefix_prompts, sharp_lm


@pytest.fixture
def fresh_compile(monkeypatch):
    """A process state where nothing has been compiled or has failed to (restored after)."""
    monkeypatch.setattr(decode, "_COMPILED", {})
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def greedy(pm, prompts, compile):
    engine = HFRolloutEngine(pm, backend="loop", compile=compile)
    return [g.answer_ids for g in engine.generate(prompts, max_new_tokens=24, do_sample=False)]


def test_compiled_step_gives_the_uncompiled_greedy_ids_with_one_graph(fresh_compile, monkeypatch):
    """fp32, rows ending (and leaving) at different steps, a cache that grows every 5 steps,
    shared-prefix groups and a second model of the same shapes: every id as the uncompiled
    loop's, and no graph per step, batch size or cache size (a recompiling step would be
    slower than the uncompiled one)."""
    from torch._dynamo.utils import counters

    monkeypatch.setattr(decode, "GROW_SLOTS", 5)
    pm = sharp_lm()
    eos = pm.tokenizer.eos_token_id
    bias = torch.zeros(pm.model.config.vocab_size)
    bias[eos] = 3.0  # rows end at different steps

    def favour_eos(module, inputs, out):
        return out + bias

    handle = pm.model.lm_head.register_forward_hook(favour_eos)
    distinct = PROMPTS + [p[::-1] for p in PROMPTS] + [p.upper() for p in PROMPTS]
    grouped = [p for p in shared_prefix_prompts()[:4] for _ in range(3)]  # groups leave: then one
    try:
        counters.clear()
        for prompts in (distinct, grouped):
            ref = greedy(pm, prompts, compile=False)
            assert len({len(a) for a in ref}) >= 2  # rows left the batch mid-answer
            assert greedy(pm, prompts, compile=True) == ref
        # One graph each: no shared prefix; a prefix for the whole batch; several groups' prefixes.
        assert counters["stats"]["unique_graphs"] == 3
        other = sharp_lm()  # the same weights, another model object: no new graph
        other.model.lm_head.register_forward_hook(favour_eos)
        assert greedy(other, distinct, compile=True) == greedy(other, distinct, compile=False)
    finally:
        handle.remove()
    assert "failed" not in decode._COMPILED
    assert counters["stats"]["unique_graphs"] == 3


def test_a_failing_compile_falls_back_with_one_warning(fresh_compile, monkeypatch):
    pm = sharp_lm()
    calls = []

    def broken(*args):
        calls.append(1)
        raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")

    monkeypatch.setitem(decode._COMPILED, "step", broken)
    ref = greedy(pm, PROMPTS, compile=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert greedy(pm, PROMPTS, compile=True) == ref
        assert greedy(pm, PROMPTS, compile=True) == ref
    assert len(calls) == 1  # tried once per process, then uncompiled
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "InvalidCxxCompiler" in messages[0]
