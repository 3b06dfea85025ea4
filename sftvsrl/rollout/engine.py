"""Generation for rollouts: the one interface a faster backend implements, and its HF default.

``RolloutEngine`` is the one thing a faster backend has to implement: given a batch of
observations (prompt text, or ``{"text", "image"}`` for -VL), return one :class:`Generation`
per observation with the exact prompt and answer token ids, because PPO recomputes
log-probs on those ids. :class:`HFRolloutEngine` is the default and runs everywhere: for
Llama-family models (tiny-lm, tiny-vlm, SmolLM, with or without LoRA) it prefills with the
model's own forward and then decodes one token per step through the model's own layers on a
KV cache allocated in blocks (no per-step concatenation, masks or logits processors), keeps a
prompt prefix that consecutive rows share once (prefilled and attended to once per group),
groups prompts by length, drops rows that ended and stops when all have; other models run HF
``generate``. Greedy answers are the same token ids as HF ``generate``'s. A vLLM engine would implement the same method on GPUs: build the chat
prompts with the same tokenizer/chat template (pass the ``prompt_token_ids`` so both sides
agree on tokens), sample with ``SamplingParams(temperature, max_tokens, seed)``, return the
output ``token_ids`` as ``answer_ids``, and load the policy's current weights before each
rollout (``llm.llm_engine.model_executor`` weight loading, or saving a checkpoint and
restarting the engine). It is not shipped because vLLM cannot be installed on CPU machines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from sftvsrl.rollout.decode import DecodeLoop, decoder_parts


@dataclass
class Generation:
    """One generated answer with the token ids it was sampled as.

    ``answer_ids`` ends with the eos token when the model stopped by itself (so the stop
    decision is part of the action's log-prob); ``extras`` holds this row's other model
    inputs (e.g. ``pixel_values``), each with a leading batch dimension of 1.
    """

    text: str
    prompt_ids: list[int]
    answer_ids: list[int]
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class RolloutEngine(Protocol):
    """Anything that turns observations into answers with their token ids."""

    def generate(
        self,
        observations: Sequence[Any],
        *,
        max_new_tokens: int,
        temperature: float,
        do_sample: bool,
        seed: int | None,
    ) -> list[Generation]: ...


EncodeFn = Callable[[Any, Sequence[Any]], dict[str, torch.Tensor]]


def default_encode(pm: Any, observations: Sequence[Any]) -> dict[str, torch.Tensor]:
    """Left-padded, chat-templated prompts (incl. pixel values for VLMs) from the models package."""
    from sftvsrl.models.encoding import encode_prompts

    return dict(encode_prompts(pm, list(observations)))


def eos_ids(pm: Any) -> list[int]:
    """Every token id that ends an answer (the tokenizer's eos and the generation config's)."""
    ids: set[int] = set()
    tok = pm.tokenizer
    if tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    cfg_eos = getattr(getattr(pm.model, "generation_config", None), "eos_token_id", None)
    if isinstance(cfg_eos, int):
        ids.add(cfg_eos)
    elif cfg_eos:
        ids.update(int(i) for i in cfg_eos)
    return sorted(ids)


class HFRolloutEngine:
    """Batched generation with a Hugging Face model; left-padded prompts, stop at eos, image
    token suppressed.

    ``backend="auto"`` (the default) runs the decode loop (:class:`sftvsrl.rollout.decode.DecodeLoop`)
    when the model's language model is a Llama-family decoder (tiny-lm, tiny-vlm's LLaVA, SmolLM,
    with or without LoRA), and HF ``generate`` otherwise. ``"generate"`` forces HF ``generate`` (the
    reference the loop is tested against); ``"loop"`` forces the loop and fails if the model
    cannot run it. Greedy answers are the same token ids either way; sampled answers come from
    the same distribution but from a per-call ``torch.Generator`` instead of the global RNG.

    ``compile=True`` runs each decode step of the loop under ``torch.compile``
    (:func:`sftvsrl.rollout.decode.compiled_step`): faster steps once compiled, at a one-off
    cost per process; it falls back to the uncompiled step, with a warning, where compiling
    fails (e.g. no C++ compiler).

    When more observations than ``batch_size`` arrive, they are grouped by prompt length so
    each batch carries little padding; the answers come back in the order asked.
    """

    def __init__(
        self,
        pm: Any,
        *,
        batch_size: int = 64,
        encode_fn: EncodeFn | None = None,
        backend: str = "auto",
        compile: bool = False,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.pm = pm
        self.batch_size = batch_size
        self.encode_fn = encode_fn or default_encode
        self.backend = backend
        self.compile = compile
        self.eos = eos_ids(pm)
        self.image_token = getattr(pm, "image_token_id", None)
        tok = pm.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos[0]

    def uses_loop(self) -> bool:
        """Whether :meth:`generate` runs the decode loop (else HF ``generate``)."""
        if self.backend == "generate":
            return False
        ok = decoder_parts(self.pm.model) is not None
        if self.backend == "loop" and not ok:
            raise ValueError(f"{type(self.pm.model).__name__}: the decode loop needs a Llama-family decoder")
        return ok

    @torch.no_grad()
    def generate(
        self,
        observations: Sequence[Any],
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        do_sample: bool = True,
        seed: int | None = None,
    ) -> list[Generation]:
        model = self.pm.model
        was_training = model.training
        model.eval()
        try:
            if self.uses_loop():
                return self._generate_loop(observations, max_new_tokens, temperature, do_sample, seed)
            out: list[Generation] = []
            # Seeded sampling must not disturb the caller's RNG streams (CPU and the model's GPU).
            device = next(model.parameters()).device
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                if seed is not None:
                    torch.manual_seed(seed)
                for start in range(0, len(observations), self.batch_size):
                    chunk = observations[start : start + self.batch_size]
                    out.extend(self._generate_chunk(chunk, max_new_tokens, temperature, do_sample))
            return out
        finally:
            model.train(was_training)

    def _generate_loop(
        self,
        observations: Sequence[Any],
        max_new_tokens: int,
        temperature: float,
        do_sample: bool,
        seed: int | None,
    ) -> list[Generation]:
        model = self.pm.model
        device = next(model.parameters()).device
        n = len(observations)
        if n == 0:
            return []
        enc = self.encode_fn(self.pm, observations)
        ids_all, mask_all = enc["input_ids"], enc["attention_mask"]
        extras_all = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        lengths = mask_all.sum(1).tolist()
        # Length buckets: sorted rows make batches of similar prompts (stable, so ties keep order).
        order = sorted(range(n), key=lambda i: lengths[i]) if n > self.batch_size else list(range(n))
        gen = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        min_new = int(getattr(model.generation_config, "min_new_tokens", None) or 0)
        loop = DecodeLoop(model, self.eos, self.pad_id, self.image_token, min_new, compile=self.compile)
        out: list[Generation | None] = [None] * n
        for start in range(0, n, self.batch_size):
            rows = order[start : start + self.batch_size]
            idx = torch.tensor(rows)
            mask = mask_all[idx]
            width = int(mask.sum(1).max())
            ids, mask = ids_all[idx][:, -width:], mask[:, -width:]
            extras = {
                k: (v[idx] if isinstance(v, torch.Tensor) and v.shape[:1] == (n,) else v)
                for k, v in extras_all.items()
            }
            moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in extras.items()}
            answers = loop.run(
                ids.to(device), mask.to(device), moved, max_new_tokens, temperature, do_sample, gen
            )
            for j, row in enumerate(rows):
                out[row] = self._generation(ids, mask, extras, j, answers[j])
        return [g for g in out if g is not None]

    def _generate_chunk(
        self, observations: Sequence[Any], max_new_tokens: int, temperature: float, do_sample: bool
    ) -> list[Generation]:
        model = self.pm.model
        enc = self.encode_fn(self.pm, observations)
        device = next(model.parameters()).device
        enc = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in enc.items()}
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos,
        )
        if do_sample:
            kwargs.update(temperature=max(temperature, 1e-5), top_k=0, top_p=1.0)
        else:
            kwargs.update(temperature=None, top_k=None, top_p=None)
        if self.image_token is not None:
            kwargs["suppress_tokens"] = [self.image_token]
        seqs = model.generate(**enc, **kwargs)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        extras = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        return [
            self._generation(ids, mask, extras, row, seqs[row, ids.shape[1] :].tolist())
            for row in range(seqs.shape[0])
        ]

    def _generation(
        self, ids: torch.Tensor, mask: torch.Tensor, extras: dict[str, Any], row: int, answer_ids: list[int]
    ) -> Generation:
        """Row ``row`` of a batch: its prompt ids without pads, its answer up to eos, and the
        row's slice of every per-row extra input (those with the batch's leading dimension)."""
        answer_ids = cut_at_eos(answer_ids, self.eos)
        text = self.pm.tokenizer.decode(answer_ids, skip_special_tokens=True)
        row_extras = {
            k: v[row : row + 1].detach().cpu()
            for k, v in extras.items()
            if isinstance(v, torch.Tensor) and v.shape[:1] == ids.shape[:1]
        }
        return Generation(text, ids[row][mask[row].bool()].tolist(), answer_ids, row_extras)


BACKENDS = ("auto", "loop", "generate")


def cut_at_eos(ids: list[int], eos: Sequence[int]) -> list[int]:
    """Answer ids up to and including the first eos; everything after it is padding."""
    for i, token in enumerate(ids):
        if token in eos:
            return ids[: i + 1]
    return ids


def encode_prompt(pm: Any, observation: Any, encode_fn: EncodeFn = default_encode) -> Generation:
    """A prompt-only record of an observation, tokenized as generation would (for the value of
    a state that gets no answer, e.g. the bootstrap state of an unfinished episode)."""
    enc = encode_fn(pm, [observation])
    ids = enc["input_ids"][0][enc["attention_mask"][0].bool()].tolist()
    extras = {
        k: v[:1].detach().cpu()
        for k, v in enc.items()
        if k not in ("input_ids", "attention_mask") and isinstance(v, torch.Tensor)
    }
    return Generation("", ids, [], extras)
