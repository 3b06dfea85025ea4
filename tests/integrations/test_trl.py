"""Two GRPO steps of the tiny model on GeneralPoints-L through TRL itself (its own
transformers generation, no vLLM), with multi-turn sequential revision. Needs trl."""

from __future__ import annotations

import pytest

trl = pytest.importorskip("trl", reason="trl is not installed (pip install -e .[trl])")

from sftvsrl.integrations.trl import SCORE_KEY, RevisionRollout  # noqa: E402
from sftvsrl.models.loading import load_model  # noqa: E402


def test_rollout_dataset_and_specs():
    rollout = RevisionRollout("GeneralPoints-L", split="id", n=3, seed=10)
    assert len(rollout.dataset) == 3
    row = rollout.dataset[1]
    assert rollout.spec_for(row["prompt"]).seed == 11
    with pytest.raises(ValueError, match="text tasks only"):
        RevisionRollout("GeneralPoints-VL", n=1)


def test_two_grpo_steps_with_revision(tmp_path):
    import torch
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    pm = load_model("tiny-lm")
    tok = pm.tokenizer
    tok.padding_side = "left"
    rollout = RevisionRollout(
        "GeneralPoints-L", split="id_seen", n=4, max_answers=2, max_answer_tokens=12, max_turns=2
    )
    seen = []

    def reward(prompts, completions, **kwargs):
        seen.append(kwargs)
        return rollout.reward(prompts, completions, **kwargs)

    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=400,
        max_steps=2,
        learning_rate=1e-3,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=pm.model,
        reward_funcs=reward,
        args=args,
        train_dataset=rollout.dataset,
        processing_class=tok,
        rollout_func=rollout,
    )
    trainer.train()
    assert trainer.state.global_step == 2
    assert len(seen) == 2
    for kwargs in seen:
        # a random tiny model never answers right: every answer is scored by our verifier (<0),
        # and with max_answers=2 an episode has one or two answers
        for score, turns in zip(kwargs[SCORE_KEY], kwargs["sftvsrl_turn_rewards"], strict=True):
            assert 1 <= len(turns) <= 2 and score == sum(turns) and all(r < 0 for r in turns)
    # the revision happened inside TRL's rollout: answers (mask 1) with feedback turns (mask 0)
    masks = rollout.last_env_masks
    assert len(masks) == 2 and any(0 in m and m[0] == 1 and m[-1] == 1 for m in masks)
    assert any(len(t) == 2 for kw in seen for t in kw["sftvsrl_turn_rewards"])
    # a random tiny model's answers all score the same, so GRPO's advantages (and its update)
    # are zero here; the parameters stay finite
    assert all(torch.isfinite(v).all() for v in pm.model.parameters())
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logged) == 2
