"""The study's text tasks for TRL's ``GRPOTrainer`` (trl 1.16.x), with sequential revision.

TRL offers two multi-turn hooks: ``environment_factory`` (the environment's methods become
*tools* the model must call through its chat template's tool-calling format) and
``rollout_func`` (the rollout is ours). Sequential revision is not tool calling: the model
answers in plain text and the verifier's feedback comes back as the next user turn. So this
is a ``rollout_func``, generating with TRL's own generation (``trainer._generate_single_turn``:
transformers ``generate``, or vLLM when the trainer is configured with it):

    rollout = RevisionRollout("GeneralPoints-L", split="id_seen", n=1000)
    trainer = GRPOTrainer(model, reward_funcs=rollout.reward, train_dataset=rollout.dataset,
                          args=GRPOConfig(...), processing_class=tokenizer, rollout_func=rollout)

Each completion is every answer of the episode with the feedback turns between them; the
feedback tokens are masked out of the loss (``env_mask``). One answer gets at most
``max_answer_tokens`` new tokens (default: ``max_completion_length // max_answers``), so that
later answers fit in the completion budget. The reward is the episode score
(the sum of the turn rewards; ``reward_mode="last"``: the last answer's reward), from
``env.step`` of our environment. Text tasks only (GeneralPoints-L, VIRL-L): a -VL rollout
needs the image passed through every turn, which this adapter does not do.
"""

from __future__ import annotations

from typing import Any

from sftvsrl.integrations.common import EpisodeSpec, RevisionEpisode, episode_spec, get_task_spec

SCORE_KEY = "sftvsrl_episode_score"


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):
        return "\n".join(str(m.get("content", "")) for m in prompt if m.get("role") == "user")
    return str(prompt)


class RevisionRollout:
    """A task's episodes as a TRL dataset, the ``rollout_func`` that plays them and the
    reward function that reads their scores."""

    def __init__(
        self,
        task: str,
        split: str = "id_seen",
        n: int = 1000,
        seed: int = 0,
        max_answers: int | None = None,
        reward_mode: str = "return",
        max_answer_tokens: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        from datasets import Dataset

        if get_task_spec(task).vision:
            raise ValueError(f"{task}: the TRL adapter runs text tasks only (GeneralPoints-L, VIRL-L)")
        self.max_answers, self.reward_mode = max_answers, reward_mode
        self.max_answer_tokens = max_answer_tokens
        self.last_env_masks: list[list[int]] = []
        self._specs: dict[str, EpisodeSpec] = {}
        rows = []
        for i in range(n):
            spec = episode_spec(task, split, seed + i, **env_kwargs)
            episode = RevisionEpisode(spec)
            text = episode.first_text
            episode.close()
            self._specs.setdefault(text, spec)  # equal prompts are the same hand or route
            rows.append({"prompt": [{"role": "user", "content": text}], "sftvsrl_episode": spec.to_json()})
        self.dataset = Dataset.from_list(rows)

    def spec_for(self, prompt: Any) -> EpisodeSpec:
        text = _prompt_text(prompt)
        if text not in self._specs:
            raise KeyError("a prompt that is not one of this rollout's episodes")
        return self._specs[text]

    # -- the rollout ---------------------------------------------------------------------
    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        tok = trainer.processing_class
        tok = getattr(tok, "tokenizer", tok)
        eos = tok.eos_token_id
        budget = int(getattr(trainer, "max_completion_length", None) or 256)
        episodes = [RevisionEpisode(self.spec_for(p), self.max_answers, self.reward_mode) for p in prompts]
        messages = [list(ep.first_messages) for ep in episodes]
        first = [
            self._ids(tok, tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True))
            for m in messages
        ]
        context = [list(ids) for ids in first]
        completion: list[list[int]] = [[] for _ in episodes]
        mask: list[list[int]] = [[] for _ in episodes]
        active = list(range(len(episodes)))
        # one answer may use at most this many tokens, so that later answers fit in the budget
        per_answer = self.max_answer_tokens or (budget // self.max_answers if self.max_answers else budget)
        gen_config = getattr(trainer, "generation_config", None)
        saved = getattr(gen_config, "max_new_tokens", None)
        if gen_config is not None:
            gen_config.max_new_tokens = max(1, min(per_answer, budget))
        try:
            while active:
                generated, _ = trainer._generate_single_turn([context[i] for i in active], None, {}, 1)
                still = []
                for i, ids in zip(active, generated, strict=True):
                    ids = list(ids)
                    completion[i] += ids
                    mask[i] += [1] * len(ids)
                    context[i] += ids
                    answer = tok.decode(ids, skip_special_tokens=True)
                    turn = episodes[i].respond(answer)
                    if turn.done or len(completion[i]) >= budget:
                        continue
                    if not ids or ids[-1] != eos:  # close the cut-off answer as the template would
                        completion[i].append(eos)
                        mask[i].append(0)
                        context[i].append(eos)
                    before = tok.apply_chat_template(
                        [*messages[i], {"role": "assistant", "content": answer}], tokenize=False
                    )
                    messages[i] += [
                        {"role": "assistant", "content": answer},
                        {"role": "user", "content": turn.next_user},
                    ]
                    after = tok.apply_chat_template(messages[i], tokenize=False, add_generation_prompt=True)
                    delta = after[len(before) :] if after.startswith(before) else after
                    feedback = self._ids(tok, delta)
                    if len(completion[i]) + len(feedback) >= budget:
                        continue
                    completion[i] += feedback
                    mask[i] += [0] * len(feedback)
                    context[i] += feedback
                    still.append(i)
                active = still
            summaries = [ep.summary() for ep in episodes]
        finally:
            if gen_config is not None:
                gen_config.max_new_tokens = saved
            for ep in episodes:
                ep.close()
        self.last_env_masks = [m[:budget] for m in mask]
        return {
            "prompt_ids": first,
            "completion_ids": [c[:budget] for c in completion],
            "logprobs": None,
            "env_mask": [m[:budget] for m in mask],
            SCORE_KEY: [s[SCORE_KEY] for s in summaries],
            "sftvsrl_turn_rewards": [s["sftvsrl_turn_rewards"] for s in summaries],
            "sftvsrl_success": [s["sftvsrl_success"] for s in summaries],
        }

    @staticmethod
    def _ids(tok: Any, text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    # -- the reward ------------------------------------------------------------------------
    def reward(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        """The episode scores the rollout left (TRL passes its extra fields as kwargs)."""
        return [float(s) for s in kwargs[SCORE_KEY]]
