"""Generation for rollouts: the one interface a faster backend implements, and its HF default.

``RolloutEngine`` is the one thing a faster backend has to implement: given a batch of
observations (prompt text, or ``{"text", "image"}`` for -VL), return one :class:`Generation`
per observation with the exact prompt and answer token ids, because PPO recomputes
log-probs on those ids. :class:`HFRolloutEngine` is the default and runs everywhere: for
Llama-family models (tiny-lm, tiny-vlm, SmolLM, with or without LoRA) it prefills with the
model's own forward and then decodes one token per step through the model's own layers on a
preallocated KV cache (no per-step concatenation, masks or logits processors), groups
prompts by length, drops rows that ended and stops when all have; other models run HF
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
import torch.nn.functional as F


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

    ``backend="auto"`` (the default) runs :class:`the decode loop <_DecodeLoop>` when the
    model's language model is a Llama-family decoder (tiny-lm, tiny-vlm's LLaVA, SmolLM, with
    or without LoRA), and HF ``generate`` otherwise. ``"generate"`` forces HF ``generate`` (the
    reference the loop is tested against); ``"loop"`` forces the loop and fails if the model
    cannot run it. Greedy answers are the same token ids either way; sampled answers come from
    the same distribution but from a per-call ``torch.Generator`` instead of the global RNG.

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
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.pm = pm
        self.batch_size = batch_size
        self.encode_fn = encode_fn or default_encode
        self.backend = backend
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
        loop = _DecodeLoop(model, self.eos, self.pad_id, self.image_token, min_new)
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
                answer_ids = cut_at_eos(answers[j], self.eos)
                text = self.pm.tokenizer.decode(answer_ids, skip_special_tokens=True)
                row_extras = {
                    k: v[j : j + 1].detach().cpu()
                    for k, v in extras.items()
                    if isinstance(v, torch.Tensor) and v.shape[:1] == (len(rows),)
                }
                prompt_ids = ids[j][mask[j].bool()].tolist()
                out[row] = Generation(text, prompt_ids, answer_ids, row_extras)
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
        width = enc["input_ids"].shape[1]
        extras = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
        gens = []
        for row in range(seqs.shape[0]):
            prompt_ids = enc["input_ids"][row][enc["attention_mask"][row].bool()].tolist()
            answer_ids = seqs[row, width:].tolist()
            answer_ids = cut_at_eos(answer_ids, self.eos)
            text = self.pm.tokenizer.decode(answer_ids, skip_special_tokens=True)
            row_extras = {
                k: v[row : row + 1].detach().cpu()
                for k, v in extras.items()
                if isinstance(v, torch.Tensor) and v.shape[:1] == seqs.shape[:1]
            }
            gens.append(Generation(text, prompt_ids, answer_ids, row_extras))
        return gens


BACKENDS = ("auto", "loop", "generate")
LOOP_MODEL_TYPES = ("llama",)
COMPACT_FRACTION = 8  # the loop drops ended rows once they are 1/8 of the batch (a copy of the cache)


def decoder_parts(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """The (language model, lm_head) the decode loop steps through, or None where it cannot.

    The language model must look like HF's ``LlamaModel`` (``embed_tokens``, ``layers``,
    ``norm``, ``rotary_emb``) with SDPA or eager attention; LoRA layers (PEFT) and a LLaVA
    wrapper around it are fine, since the loop calls the model's own modules.
    """
    base = getattr(model, "module", model)  # DDP
    if hasattr(base, "get_base_model"):  # PEFT: LoRA lives inside the base model's modules
        base = base.get_base_model()
    inner = getattr(base, "model", None)
    lm = getattr(inner, "language_model", inner)
    head = getattr(base, "lm_head", None)
    if lm is None or head is None:
        return None
    if not all(hasattr(lm, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
        return None
    cfg = getattr(lm, "config", None)
    if getattr(cfg, "model_type", None) not in LOOP_MODEL_TYPES:
        return None
    if getattr(cfg, "_attn_implementation", None) not in ("sdpa", "eager"):
        return None
    return lm, head


class _SlotCache:
    """Preallocated keys/values per layer; ``update`` writes at ``pos`` and returns the filled part.

    It is the one method HF's Llama attention calls on its cache, so the model's own decoder
    layers run unchanged on it, without the per-step concatenation of ``DynamicCache``.
    """

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], pos: int) -> None:
        self.keys, self.values, self.pos = keys, values, pos

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.pos + key_states.shape[-2]
        self.keys[layer_idx][:, :, self.pos : end] = key_states
        self.values[layer_idx][:, :, self.pos : end] = value_states
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]


class _Fused:
    """One decoder layer's plain ``nn.Linear`` weights, prepared for a call: q/k/v and gate/up
    concatenated (one token costs two matmuls there instead of five), and under autocast cast
    once to the autocast dtype instead of once per op and step. Rebuilt per call, so they are
    always the current weights; a projection that is not a plain ``nn.Linear`` (a LoRA layer)
    keeps its own module."""

    def __init__(self, layer: torch.nn.Module, dtype: torch.dtype | None) -> None:
        attn, mlp = layer.self_attn, layer.mlp

        def cast(t: torch.Tensor | None) -> torch.Tensor | None:
            return t if t is None or dtype is None else t.to(dtype)

        def plain(*mods: Any) -> bool:
            return all(type(m) is torch.nn.Linear for m in mods) and len({m.bias is None for m in mods}) == 1

        def joined(*mods: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
            bias = None if mods[0].bias is None else torch.cat([m.bias for m in mods])
            return cast(torch.cat([m.weight for m in mods])), cast(bias), [m.out_features for m in mods]

        projs = (attn.q_proj, attn.k_proj, attn.v_proj)
        self.qkv = joined(*projs) if plain(*projs) else None
        gate, up = getattr(mlp, "gate_proj", None), getattr(mlp, "up_proj", None)
        self.gate_up = joined(gate, up) if plain(gate, up) else None
        self.o = joined(attn.o_proj) if plain(attn.o_proj) else None
        down = getattr(mlp, "down_proj", None)
        self.down = joined(down) if self.gate_up is not None and plain(down) else None


def _linear(x: torch.Tensor, prepared: tuple | None, module: torch.nn.Module) -> torch.Tensor:
    return module(x) if prepared is None else F.linear(x, prepared[0], prepared[1])


def _rms_norm(norm: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """HF's ``LlamaRMSNorm`` as torch's one fused op (fp32 in, fp32 out, as in the residual stream)."""
    if type(norm).__name__ == "LlamaRMSNorm" and x.dtype == torch.float32 and norm.weight.dtype == x.dtype:
        return F.rms_norm(x, (x.shape[-1],), norm.weight, norm.variance_epsilon)
    return norm(x)


def _layer_step(
    layer: torch.nn.Module,
    fused: _Fused,
    hidden: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    cache: _SlotCache,
    index: int,
    bias: torch.Tensor,
) -> torch.Tensor:
    """One token through a Llama decoder layer, with its own modules (LoRA included), in the
    order of HF's ``LlamaDecoderLayer``. Attention is written out: for one query per row, two
    batched matmuls beat SDPA's CPU flash kernel."""
    attn, mlp = layer.self_attn, layer.mlp
    batch = hidden.shape[0]
    head_dim = attn.head_dim
    x = _rms_norm(layer.input_layernorm, hidden)
    if fused.qkv is not None:
        w, b, sizes = fused.qkv
        q, k, v = F.linear(x, w, b).split(sizes, dim=-1)
    else:
        q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    q = q.reshape(batch, 1, -1, head_dim).transpose(1, 2)
    k = k.reshape(batch, 1, -1, head_dim).transpose(1, 2)
    v = v.reshape(batch, 1, -1, head_dim).transpose(1, 2)
    # HF's q * cos + rotate_half(q) * sin, with sin's first half negated by the caller so that
    # rotate_half is one roll (-a * b == a * -b exactly, so the values are the same).
    half = head_dim // 2
    q = q * cos + q.roll(half, -1) * sin
    k = k * cos + k.roll(half, -1) * sin
    keys, values = cache.update(k, v, index)
    kv_heads = keys.shape[1]
    q = q.reshape(batch, kv_heads, -1, head_dim)  # query heads grouped by their key/value head
    scores = torch.matmul(q, keys.transpose(2, 3)) * attn.scaling + bias
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    out = torch.matmul(probs, values).reshape(batch, 1, -1)
    hidden = hidden + _linear(out, fused.o, attn.o_proj)
    x = _rms_norm(layer.post_attention_layernorm, hidden)
    if fused.gate_up is not None:
        w, b, sizes = fused.gate_up
        gate, up = F.linear(x, w, b).split(sizes, dim=-1)
        return hidden + _linear(mlp.act_fn(gate) * up, fused.down, mlp.down_proj)
    return hidden + mlp(x)


class _DecodeLoop:
    """Prefill with the model's own forward (pixels included), then one token at a time
    through its decoder layers on a preallocated cache.

    Per step it does what HF ``generate`` does for these options, with the same inputs
    (positions from the attention mask, pads masked), so greedy answers are the same ids:
    suppress the image token, forbid eos before ``min_new_tokens``, argmax or sample from
    ``softmax(logits / temperature)``. Rows that ended leave the batch (once they are an
    eighth of it), and the loop stops as soon as every row has ended.
    """

    def __init__(
        self, model: torch.nn.Module, eos: Sequence[int], pad_id: int, image_token: int | None, min_new: int
    ) -> None:
        parts = decoder_parts(model)
        if parts is None:
            raise ValueError(f"{type(model).__name__}: no Llama-family decoder for the decode loop")
        self.model = model
        self.lm, self.head = parts
        self.eos, self.pad_id, self.image_token, self.min_new = list(eos), pad_id, image_token, min_new

    def run(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        extras: dict[str, Any],
        max_new_tokens: int,
        temperature: float,
        do_sample: bool,
        gen: torch.Generator | None,
    ) -> list[list[int]]:
        batch, width = ids.shape
        if max_new_tokens <= 0:
            return [[] for _ in range(batch)]
        device = ids.device
        pos = mask.long().cumsum(-1) - 1
        pos.masked_fill_(mask == 0, 1)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            logits_to_keep=1,
            **extras,
        )
        total = width + max_new_tokens - 1
        keys, values = [], []
        for layer in out.past_key_values.layers:
            k, v = layer.keys, layer.values
            kb = k.new_empty(batch, k.shape[1], total, k.shape[3])
            vb = v.new_empty(batch, v.shape[1], total, v.shape[3])
            kb[:, :, :width], vb[:, :, :width] = k, v
            keys.append(kb)
            values.append(vb)
        cache = _SlotCache(keys, values, width)
        seen = torch.zeros(batch, total, dtype=torch.bool, device=device)
        seen[:, :width] = mask.bool()
        logits = out.logits[:, -1, :].float()
        del out
        eos = torch.tensor(self.eos, device=device)
        next_pos = pos[:, -1:] + 1
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        alive = list(range(batch))  # the caller's row of each row still computed
        answers: list[list[int]] = [[] for _ in range(batch)]
        n_layers = self.lm.config.num_hidden_layers
        amp = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
        fused = [_Fused(layer, amp) for layer in self.lm.layers[:n_layers]]
        # cos/sin for every position this call reaches, computed once (elementwise, so the same
        # values as per step); sin's first half negated so that rotate_half is one roll.
        positions = torch.arange(int(next_pos.max()) + max_new_tokens, device=device)[None]
        cos_table, sin_table = self.lm.rotary_emb(
            self.lm.embed_tokens.weight[:1, None], position_ids=positions
        )
        cos_table, sin_table = cos_table[0], sin_table[0].clone()
        sin_table[:, : sin_table.shape[-1] // 2].neg_()
        for step in range(max_new_tokens):
            token = self._pick(logits, step, temperature, do_sample, gen)
            for row, t, d in zip(alive, token.tolist(), done.tolist(), strict=True):
                if not d:
                    answers[row].append(t)
            done |= torch.isin(token, eos)
            n_done = int(done.sum())
            if step == max_new_tokens - 1 or n_done == len(alive):
                break
            if n_done * COMPACT_FRACTION >= len(alive):  # drop ended rows from the batch
                keep = (~done).nonzero().squeeze(1)
                alive = [alive[i] for i in keep.tolist()]
                cache.keys = [k.index_select(0, keep) for k in cache.keys]
                cache.values = [v.index_select(0, keep) for v in cache.values]
                seen, next_pos, token = seen[keep], next_pos[keep], token[keep]
                done = done[keep]
            slot = width + step
            seen[:, slot] = True
            cache.pos = slot
            # Additive mask over the filled slots: 0 where a row sees a token, -inf on its pads.
            bias = torch.zeros(len(alive), 1, 1, slot + 1, device=device).masked_fill_(
                ~seen[:, None, None, : slot + 1], -float("inf")
            )
            position_ids = next_pos + step
            hidden = self.lm.embed_tokens(token[:, None])
            cos, sin = cos_table[position_ids][:, None], sin_table[position_ids][:, None]
            for i, layer in enumerate(self.lm.layers[:n_layers]):
                hidden = _layer_step(layer, fused[i], hidden, cos, sin, cache, i, bias)
            logits = self.head(self.lm.norm(hidden))[:, -1, :].float()
        return answers

    def _pick(
        self,
        logits: torch.Tensor,
        step: int,
        temperature: float,
        do_sample: bool,
        gen: torch.Generator | None,
    ) -> torch.Tensor:
        if self.image_token is not None:
            logits[:, self.image_token] = -float("inf")
        if step < self.min_new:
            logits[:, self.eos] = -float("inf")
        if not do_sample:
            return logits.argmax(-1)
        probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
        return torch.multinomial(probs, 1, generator=gen).squeeze(1)


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
