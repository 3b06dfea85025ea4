"""RevisionAgentLoop against verl's real AgentLoopBase and Continuous Token builder, with a
scripted server (wrong, wrong, expert) in place of vLLM. Needs verl (pip install -e .[verl])."""

from __future__ import annotations

import asyncio

import pytest

verl_agent_loop = pytest.importorskip(
    "verl.experimental.agent_loop.agent_loop", reason="verl is not installed (pip install -e .[verl])"
)
from omegaconf import OmegaConf  # noqa: E402  (verl brings omegaconf)
from verl.workers.rollout.replica import TokenOutput  # noqa: E402

from sftvsrl.integrations.common import (  # noqa: E402
    RETRY_INSTRUCTION,
    REVISION_AGENT,
    EpisodeSpec,
    RevisionEpisode,
)
from sftvsrl.integrations.export import build_rows  # noqa: E402
from sftvsrl.integrations.verl import compute_score  # noqa: E402
from sftvsrl.integrations.verl_agent import RevisionAgentLoop  # noqa: E402
from sftvsrl.models.loading import load_model  # noqa: E402

from .conftest import wrong_answer  # noqa: E402


class ScriptedServer:
    """Answers with the next scripted text, as token ids ending with EOS."""

    def __init__(self, tokenizer, answers):
        self.tokenizer, self.answers, self.prompts = tokenizer, list(answers), []

    async def generate(self, request_id, prompt_ids, sampling_params, **kwargs):
        self.prompts.append(list(prompt_ids))
        ids = self.tokenizer.encode(self.answers.pop(0), add_special_tokens=False)
        return TokenOutput(token_ids=[*ids, self.tokenizer.eos_token_id], log_probs=[-0.5] * (len(ids) + 1))


def _loop(tokenizer, server, max_assistant_turns=5):
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {
                    "prompt_length": 4096,
                    "response_length": 4096,
                    "multi_turn": {"max_assistant_turns": max_assistant_turns},
                }
            },
            "data": {},
        }
    )
    return RevisionAgentLoop(
        trainer_config=DictConfigWrap(config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        dataset_cls=RLHFDataset,
        data_config=DictConfigWrap(config.data),
        hf_model_type="llama",
    )


def _run(tokenizer, server, sampling_params, max_assistant_turns=5, **kwargs):
    """Build the loop inside the running event loop (AgentLoopBase keeps the loop it was made in)."""

    async def main():
        return await _loop(tokenizer, server, max_assistant_turns).run(sampling_params, **kwargs)

    return asyncio.run(main())


def test_agent_loop_is_registered_under_the_rows_agent_name():
    assert verl_agent_loop._agent_loop_registry[REVISION_AGENT]["_target_"].endswith("RevisionAgentLoop")


def test_three_turn_revision_episode():
    tokenizer = load_model("tiny-lm").tokenizer
    row = build_rows("GeneralPoints-L", "id", 1, seed=4)[0]
    expert = RevisionEpisode(EpisodeSpec.parse(row["reward_model"]["ground_truth"])).expert_answer
    answers = [wrong_answer(expert), "no json", expert]
    server = ScriptedServer(tokenizer, answers)
    kwargs = {
        "raw_prompt": row["prompt"],
        "interaction_kwargs": row["extra_info"]["interaction_kwargs"],
        "reward_model": row["reward_model"],
    }
    out = _run(tokenizer, server, {"temperature": 1.0}, **kwargs)

    assert len(server.prompts) == 3 and out.num_turns == 6
    extra = out.extra_fields
    assert extra["turn_scores"] == [-1.0, -3.0, 5.0] == extra["sftvsrl_turn_rewards"]
    assert extra["sftvsrl_episode_score"] == 1.0 and extra["sftvsrl_success"] is True
    feedback = extra["sftvsrl_feedback"]
    assert len(feedback) == 2 and all(f.endswith(RETRY_INSTRUCTION) for f in feedback)
    assert feedback[0].startswith("Feedback: Wrong value") and feedback[1].startswith(
        "Feedback: Format error"
    )

    # the response holds the three answers (mask 1) and the two feedback turns (mask 0)
    assert len(out.response_ids) == len(out.response_mask)
    model_text = tokenizer.decode([t for t, m in zip(out.response_ids, out.response_mask, strict=True) if m])
    env_text = tokenizer.decode(
        [t for t, m in zip(out.response_ids, out.response_mask, strict=True) if not m]
    )
    for answer in answers:
        assert answer in model_text
    for f in feedback:
        assert f in env_text and f not in model_text
    assert out.response_logprobs is not None and len(out.response_logprobs) == len(out.response_ids)
    # each later prompt continues the earlier one token for token (what verl trains on)
    assert server.prompts[1][: len(server.prompts[0])] == server.prompts[0]
    assert (
        list(out.prompt_ids) + list(out.response_ids[: len(server.prompts[2]) - len(out.prompt_ids)])
        == (server.prompts[2])
    )

    # verl's reward manager merges the loop's extra fields into extra_info
    solution = tokenizer.decode(out.response_ids, skip_special_tokens=True)
    scored = compute_score(row["data_source"], solution, row["reward_model"]["ground_truth"], dict(extra))
    assert scored["score"] == 1.0


def test_max_assistant_turns_stops_the_episode():
    tokenizer = load_model("tiny-lm").tokenizer
    row = build_rows("GeneralPoints-L", "ood", 1, seed=2)[0]
    server = ScriptedServer(tokenizer, ["x", "y", "z"])
    out = _run(tokenizer, server, {}, 2, raw_prompt=row["prompt"], reward_model=row["reward_model"])
    assert len(server.prompts) == 2 and out.extra_fields["sftvsrl_turn_rewards"] == [-3.0, -3.0]
