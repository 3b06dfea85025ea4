"""The interaction protocol over our env: a scripted three-turn revision episode."""

from __future__ import annotations

import asyncio

import pytest

from sftvsrl.integrations.common import RETRY_INSTRUCTION, RevisionEpisode, episode_spec
from sftvsrl.integrations.verl_agent import RevisionInteraction

from .conftest import wrong_answer


def test_wrong_wrong_expert_through_the_interaction():
    async def scenario():
        inter = RevisionInteraction()
        spec = episode_spec("GeneralPoints-L", "id", 3)
        iid = await inter.start_interaction("ep-1", episode=spec.to_json())
        episode = inter.episode(iid)
        messages = list(episode.first_messages)
        expert = episode.expert_answer
        replies, scores = [], []
        for answer in (wrong_answer(expert), "not an answer", expert):
            messages.append({"role": "assistant", "content": answer})
            done, reply, score, meta = await inter.generate_response(iid, messages)
            scores.append(score)
            if not done:
                replies.append(reply)
                messages.append({"role": "user", "content": reply})
        final = await inter.calculate_score(iid)
        await inter.finalize_interaction(iid)
        return done, replies, scores, final, meta

    done, replies, scores, final, meta = asyncio.run(scenario())
    assert done and meta["success"] and meta["outcome"] == "correct"
    assert scores == [-1.0, -3.0, 5.0] and final == 1.0
    assert len(replies) == 2
    assert replies[0].startswith("Feedback: Wrong value:") and replies[0].endswith(RETRY_INSTRUCTION)
    assert replies[1].startswith("Feedback: Format error:")


def test_out_of_turns_and_last_reward_mode():
    spec = episode_spec("GeneralPoints-L", "ood", 1, max_turns=2)
    ep = RevisionEpisode(spec, reward_mode="last")
    t1 = ep.respond("x")
    t2 = ep.respond(None)
    assert not t1.done and t2.done and not t2.success and ep.score() == -3.0
    with pytest.raises(RuntimeError):
        ep.respond("again")
    assert ep.summary()["sftvsrl_turn_rewards"] == [-3.0, -3.0]


def test_virl_next_user_turn_is_the_next_observation():
    spec = episode_spec("VIRL-L", "id", 0)
    ep = RevisionEpisode(spec, max_answers=3)
    first = ep.expert_answer
    wrong = ep.respond(wrong_answer(first))
    assert not wrong.done and wrong.next_user.endswith(RETRY_INSTRUCTION)
    right = ep.respond(first)
    assert right.reward == 1.0 and not right.done
    assert right.next_user.startswith("Feedback: Correct") and "[Instruction]" in right.next_user
    assert ep.respond(ep.expert_answer).done  # the third answer hits max_answers
    assert ep.score() == 1.0
