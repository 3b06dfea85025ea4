"""Sequential revision on verl (0.9.x): an agent loop that drives our environment.

verl 0.9 has no ``BaseInteraction``/``interaction_config_path`` any more (they were removed
in favour of agent loops); a multi-turn rollout with environment feedback is an
``AgentLoopBase`` subclass, named per row by the ``agent_name`` column and registered through
``actor_rollout_ref.rollout.agent.agent_loop_config_path`` (configs/verl/agent_loop.yaml).

``RevisionAgentLoop.run``: the row's first user message is the episode's first observation;
each generated answer is scored by ``env.step``; the verifier's feedback (and, after a right
V-IRL step, the next observation) becomes the next user turn, whose tokens are masked out of
the loss; it stops when the episode ends, after ``multi_turn.max_assistant_turns`` answers,
or when the response budget is spent. The episode score (the sum of the turn rewards) and
per-turn rewards go into the output's extra fields, where ``sftvsrl.integrations.verl.
compute_score`` finds them (verl merges them into ``extra_info``).

``RevisionInteraction`` keeps the interaction protocol (``start_interaction``,
``generate_response`` -> ``(should_terminate, response, score, metadata)``,
``calculate_score``, ``finalize_interaction``, all async, keyed by ``instance_id``) on top of
the same episode driver; the agent loop uses it, and so can any loop that speaks it.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from sftvsrl.integrations.common import REVISION_AGENT, EpisodeSpec, RevisionEpisode


def spec_from_row(kwargs: dict[str, Any]) -> EpisodeSpec:
    """The episode spec of a verl row: from ``interaction_kwargs`` or ``reward_model``."""
    inter = kwargs.get("interaction_kwargs") or {}
    if isinstance(inter, dict) and inter.get("episode"):
        return EpisodeSpec.parse(inter["episode"])
    reward_model = kwargs.get("reward_model") or {}
    if isinstance(reward_model, dict) and reward_model.get("ground_truth") is not None:
        return EpisodeSpec.parse(reward_model["ground_truth"])
    raise ValueError(
        "the row has no sftvsrl episode (interaction_kwargs.episode or reward_model.ground_truth)"
    )


class RevisionInteraction:
    """Our environment behind the interaction protocol, one episode per ``instance_id``."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = dict(config or {})
        self.name = self.config.get("name", REVISION_AGENT)
        self.reward_mode = self.config.get("reward_mode", "return")
        self._episodes: dict[str, RevisionEpisode] = {}

    async def start_interaction(self, instance_id: str | None = None, **kwargs: Any) -> str:
        """Open the episode named by ``episode`` (or ``ground_truth``); returns its id."""
        instance_id = instance_id or uuid4().hex
        spec = EpisodeSpec.parse(kwargs.get("episode", kwargs.get("ground_truth")))
        max_answers = kwargs.get("max_answers", self.config.get("max_assistant_turns"))
        self._episodes[instance_id] = RevisionEpisode(spec, max_answers, self.reward_mode)
        return instance_id

    def episode(self, instance_id: str) -> RevisionEpisode:
        return self._episodes[instance_id]

    async def generate_response(
        self, instance_id: str, messages: list[dict[str, Any]], **kwargs: Any
    ) -> tuple[bool, str, float, dict[str, Any]]:
        """Score the last assistant message; the response is the next user turn."""
        episode = self._episodes[instance_id]
        answer = ""
        for message in reversed(messages):
            if message.get("role") == "assistant":
                content = message.get("content", "")
                if isinstance(content, list):  # content parts
                    content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
                answer = content
                break
        turn = episode.respond(answer)
        metadata = {
            "outcome": turn.outcome,
            "feedback": turn.feedback,
            "success": turn.success,
            "image": turn.next_image,
        }
        return turn.done, turn.next_user or "", turn.reward, metadata

    async def calculate_score(self, instance_id: str, **kwargs: Any) -> float:
        return self._episodes[instance_id].score()

    async def finalize_interaction(self, instance_id: str, **kwargs: Any) -> None:
        episode = self._episodes.pop(instance_id, None)
        if episode is not None:
            episode.close()


try:  # the agent loop needs verl itself (pip install -e .[verl])
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
except ImportError:  # pragma: no cover - exercised only without verl
    AgentLoopBase = None  # type: ignore[assignment,misc]


if AgentLoopBase is not None:

    @register(REVISION_AGENT)
    class RevisionAgentLoop(AgentLoopBase):  # type: ignore[misc,valid-type]
        """Multi-turn sequential revision with our verifier's feedback as the user turns."""

        def __init__(self, *args: Any, tools: Any = None, reward_mode: str = "return", **kwargs: Any):
            super().__init__(*args, **kwargs)
            multi_turn = self.rollout_config.multi_turn
            self.max_assistant_turns = multi_turn.max_assistant_turns
            self.prompt_length = self.rollout_config.prompt_length
            self.response_length = self.rollout_config.response_length
            self.interaction = RevisionInteraction(
                {"reward_mode": reward_mode, "max_assistant_turns": self.max_assistant_turns}
            )

        async def run(
            self, sampling_params: dict[str, Any], priority: int = 0, **kwargs: Any
        ) -> AgentLoopOutput:
            messages = list(kwargs["raw_prompt"])
            spec = spec_from_row(kwargs)
            multi_modal_data = await self.process_multi_modal_info(messages)
            images = multi_modal_data.get("images")
            self._assert_mm_supported(bool(multi_modal_data))
            mm_processor_kwargs = self._get_mm_processor_kwargs(None)
            prompt_ids = await self.ct_build_initial_tokens(messages, images=images)
            response_mask: list[int] = []
            response_logprobs: list[float] = []
            metrics: dict[str, Any] = {}
            extra_fields: dict[str, Any] = {}
            request_id = uuid4().hex
            instance_id = await self.interaction.start_interaction(request_id, episode=spec.to_json())
            turn_scores: list[float] = []
            feedback_turns: list[str] = []
            user_turns = assistant_turns = 0
            try:
                while True:
                    output = await self.server_manager.generate(
                        request_id=request_id,
                        prompt_ids=prompt_ids,
                        sampling_params=sampling_params,
                        image_data=images,
                        mm_processor_kwargs=mm_processor_kwargs,
                        priority=int(priority),
                    )
                    if metrics.get("num_preempted") is None:
                        metrics["num_preempted"] = (
                            output.num_preempted if output.num_preempted is not None else -1
                        )
                    if not extra_fields:
                        extra_fields.update(output.extra_fields or {})
                    assistant_turns += 1
                    merge, response_mask, response_logprobs = await self.ct_merge_assistant_token(
                        prompt_ids,
                        output.token_ids,
                        response_mask,
                        response_logprobs if (response_logprobs or output.log_probs) else None,
                        assistant_logprobs=output.log_probs if output.log_probs else None,
                    )
                    response_logprobs = response_logprobs or []
                    prompt_ids = merge.token_ids
                    answer = self.tokenizer.decode(output.token_ids, skip_special_tokens=True)
                    messages.append({"role": "assistant", "content": answer})
                    done, reply, score, meta = await self.interaction.generate_response(instance_id, messages)
                    turn_scores.append(score)
                    if done or len(response_mask) >= self.response_length:
                        break
                    previous = list(messages)
                    content: Any = reply
                    if meta.get("image") is not None and images is not None:  # a new V-IRL-VL view
                        from PIL import Image

                        images = [*images, Image.fromarray(meta["image"])]
                        content = [{"type": "image"}, {"type": "text", "text": reply}]
                    messages.append({"role": "user", "content": content})
                    feedback_turns.append(reply)
                    merge, mask, logprobs = await self.ct_merge_context_msg(
                        previous, messages, prompt_ids, response_mask, response_logprobs or None
                    )
                    if len(mask) >= self.response_length:
                        break
                    prompt_ids, response_mask = merge.token_ids, mask
                    if response_logprobs:
                        response_logprobs = logprobs or []
                    user_turns += 1
                episode = self.interaction.episode(instance_id)
                summary = episode.summary()
            finally:
                await self.interaction.finalize_interaction(instance_id)

            response_ids = prompt_ids[-len(response_mask) :] if response_mask else []
            prompt_only = prompt_ids[: len(prompt_ids) - len(response_mask)]
            extra_fields.update(summary)
            extra_fields.update(
                {"turn_scores": turn_scores, "tool_rewards": [], "sftvsrl_feedback": feedback_turns}
            )
            mm = {"images": images} if images is not None else {}
            return AgentLoopOutput(
                prompt_ids=prompt_only,
                response_ids=response_ids[: self.response_length],
                response_mask=response_mask[: self.response_length],
                response_logprobs=response_logprobs[: self.response_length] if response_logprobs else None,
                multi_modal_data=mm,
                mm_processor_kwargs=mm_processor_kwargs,
                num_turns=user_turns + assistant_turns + 1,
                metrics=metrics,
                extra_fields=extra_fields,
            )
