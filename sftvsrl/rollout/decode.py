"""The hand-written decode loop of :class:`~sftvsrl.rollout.engine.HFRolloutEngine` for
Llama-family models: prefill with the model's own forward, then one token per step through the
model's own decoder layers on a KV cache allocated 32 slots at a time, with q/k/v and gate/up
projections fused and attention for one query written out. Greedy answers are the same token
ids as HF ``generate``'s.

Prompts share work where they share tokens. The batch is cut into equal groups of
consecutive rows (the whole batch, or a GRPO group's samples of one prompt, or whichever
split shares most) and the prefix common to a group's rows is prefilled once and kept once:
each decode step attends to it with one matrix product per group and key/value head,
instead of reading a copy per row from memory, which at rollout batch sizes is what bounds
attention on a CPU. Only each row's own tail (and answer) is cached per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from sftvsrl.models.encoding import pad_ids

LOOP_MODEL_TYPES = ("llama",)
COMPACT_FRACTION = 8  # the loop drops ended rows once they are 1/8 of the batch (a copy of the cache)
MIN_SHARED_PREFIX = 16  # tokens; a shorter common prefix saves less than its extra forward costs
GROW_SLOTS = 32  # the KV cache grows by this many slots at a time (see _SlotCache)


def _keys_transposed(k: torch.Tensor) -> torch.Tensor:
    """``k`` ``[..., L, head_dim]`` stored so that ``k.transpose(2, 3)`` is row-major. bf16
    batched matmuls (oneDNN) copy a transposed view before multiplying, so q @ K^T is 2-3x
    faster on keys laid out this way; fp32 (BLAS) reads either layout about as fast."""
    return k.transpose(2, 3).contiguous().transpose(2, 3)


def _is_transposed(t: torch.Tensor) -> bool:
    """Whether ``t`` ``[batch, kv_heads, L, head_dim]`` is laid out as :func:`_keys_transposed` makes it."""
    return t.dim() == 4 and t.stride(-2) == 1 and t.stride(-1) != 1


def _select_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``t.index_select(0, index)`` that keeps a transposed key layout."""
    if _is_transposed(t):
        return t.transpose(2, 3).index_select(0, index).transpose(2, 3)
    return t.index_select(0, index)


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


def _zero_slots(like: torch.Tensor, slots: int, dtype: torch.dtype, transposed: bool) -> torch.Tensor:
    """Zeros ``[batch, kv_heads, slots, head_dim]`` shaped like ``like``; ``transposed`` lays them
    out as :func:`_keys_transposed` does. Zeros, not empty memory: unwritten slots are read
    (and masked) by attention, and a NaN there would survive its -inf mask."""
    batch, heads, _, head_dim = like.shape
    if transposed:
        return like.new_zeros(batch, heads, head_dim, slots, dtype=dtype).transpose(2, 3)
    return like.new_zeros(batch, heads, slots, head_dim, dtype=dtype)


class _SlotCache:
    """Keys/values per layer in buffers of ``capacity`` slots; ``update`` writes at ``pos`` and
    returns the whole buffers, filled slots and not yet filled ones (zeros) alike.

    Attention thus multiplies whole buffers, which are contiguous, and the caller's bias masks
    the slots beyond ``pos``. A slice up to ``pos`` is not contiguous, and the CPU batched
    matmuls copied it on every call (in bf16 the copies made such a product 1.5-2x slower
    than on the whole buffer). Buffers start ``GROW_SLOTS`` past the prompt and grow by as
    much when a step needs a slot past them (one copy per ``GROW_SLOTS`` steps), so a step
    reads on average ``GROW_SLOTS / 2`` masked slots more than it needs.
    """

    def __init__(
        self,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        pos: int,
        limit: int,
        prefix: SharedPrefix | None = None,
    ) -> None:
        self.keys, self.values, self.pos, self.limit = keys, values, pos, limit
        self.prefix = prefix

    @property
    def capacity(self) -> int:
        return self.values[0].shape[2]

    def reserve(self, slot: int) -> None:
        """Grow the buffers (by ``GROW_SLOTS``, at most to ``limit``) until they hold ``slot``."""
        if slot < self.capacity:
            return
        slots = min(self.limit, max(slot + 1, self.capacity + GROW_SLOTS))

        def grown(t: torch.Tensor) -> torch.Tensor:
            bigger = _zero_slots(t, slots, t.dtype, transposed=_is_transposed(t))
            bigger[:, :, : t.shape[2]] = t
            return bigger

        self.keys = [grown(k) for k in self.keys]
        self.values = [grown(v) for v in self.values]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, slot: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write one token's keys/values ``[batch, kv_heads, 1, head_dim]`` at ``slot`` (a
        one-element index tensor: a tensor, so that a compiled step does not specialise on it)."""
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys.index_copy_(2, slot, key_states.to(keys.dtype))
        values.index_copy_(2, slot, value_states.to(values.dtype))
        return keys, values


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
        # Attention's scaling folded into the query rows: RoPE and q.k are linear in q, so the
        # scores are the same (exactly so where the scaling is a power of two, head_dim 4^n).
        self.scaling = attn.scaling
        if self.qkv is not None:
            w, b, sizes = self.qkv
            w = w.clone()
            w[: sizes[0]] *= attn.scaling
            if b is not None:
                b = b.clone()
                b[: sizes[0]] *= attn.scaling
            self.qkv, self.scaling = (w, b, sizes), 1.0
        gate, up = getattr(mlp, "gate_proj", None), getattr(mlp, "up_proj", None)
        self.gate_up = joined(gate, up) if plain(gate, up) else None
        self.o = joined(attn.o_proj) if plain(attn.o_proj) else None
        down = getattr(mlp, "down_proj", None)
        self.down = joined(down) if self.gate_up is not None and plain(down) else None
        self.inplace_silu = type(getattr(mlp, "act_fn", None)) is torch.nn.SiLU
        # Under autocast addmm would cast the fp32 residual stream down: add it separately there.
        self.residual_in_matmul = dtype is None


def _add_linear(
    hidden: torch.Tensor, x: torch.Tensor, prepared: tuple | None, module: torch.nn.Module, fused: _Fused
) -> torch.Tensor:
    """``hidden + linear(x)``, as one ``addmm`` (the residual added inside the matmul) where
    the weights are plain and bias-free and no autocast is on."""
    if prepared is None or prepared[1] is not None or not fused.residual_in_matmul:
        return hidden + _linear(x, prepared, module)
    out = torch.addmm(hidden.reshape(-1, hidden.shape[-1]), x.reshape(-1, x.shape[-1]), prepared[0].t())
    return out.view(hidden.shape)


def _linear(x: torch.Tensor, prepared: tuple | None, module: torch.nn.Module) -> torch.Tensor:
    return module(x) if prepared is None else F.linear(x, prepared[0], prepared[1])


def _rms_norm(norm: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """HF's ``LlamaRMSNorm`` as torch's one fused op (fp32 in, fp32 out, as in the residual stream)."""
    if type(norm).__name__ == "LlamaRMSNorm" and x.dtype == torch.float32 and norm.weight.dtype == x.dtype:
        return F.rms_norm(x, (x.shape[-1],), norm.weight, norm.variance_epsilon)
    return norm(x)


@dataclass
class SharedPrefix:
    """The prompt prefix each group of consecutive rows shares, kept once per group: per layer
    ``[groups, kv_heads, P, head_dim]`` keys and values (right-padded to the longest group
    prefix) and ``bias`` ``[groups, 1, 1, P]``: 0 on a group's tokens, -inf on its padding."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    bias: torch.Tensor

    @property
    def groups(self) -> int:
        return self.bias.shape[0]

    def select(self, groups: torch.Tensor) -> SharedPrefix:
        return SharedPrefix(
            [_select_rows(k, groups) for k in self.keys],
            [v.index_select(0, groups) for v in self.values],
            self.bias.index_select(0, groups),
        )


def _attend(
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    bias: torch.Tensor,
    scaling: float,
    prefix: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """Attention of one query per row ``[batch, heads, 1, head_dim]`` over the row's own cache
    ``[batch, kv_heads, L, head_dim]`` (``bias`` masks its pads) and, when given, over its
    group's shared prefix (keys, values ``[groups, kv_heads, P, head_dim]``, bias): one
    softmax over both, so the result is attention over the concatenated keys. The prefix part
    is one ``[rows of a group, head_dim] x [head_dim, P]`` product per group and kv head."""
    batch, _, _, head_dim = q.shape
    kv_heads = keys.shape[1]
    q = q.reshape(batch, kv_heads, -1, head_dim)  # query heads grouped by their key/value head
    scores = torch.matmul(q, keys.transpose(2, 3))
    if scaling != 1.0:
        scores *= scaling
    scores += bias
    if prefix is None:
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        return torch.matmul(probs, values).reshape(batch, 1, -1)
    prefix_keys, prefix_values, prefix_bias = prefix
    n_groups, shared = prefix_keys.shape[0], prefix_keys.shape[2]
    heads_per_kv = q.shape[2]
    rows = batch // n_groups

    def by_group(t: torch.Tensor) -> torch.Tensor:  # [batch, kv, h, x] -> [groups, kv, rows * h, x]
        return (
            t.reshape(n_groups, rows, kv_heads, heads_per_kv, -1)
            .transpose(1, 2)
            .reshape(n_groups, kv_heads, rows * heads_per_kv, -1)
        )

    def by_row(t: torch.Tensor) -> torch.Tensor:  # the inverse of by_group
        return (
            t.reshape(n_groups, kv_heads, rows, heads_per_kv, -1)
            .transpose(1, 2)
            .reshape(batch, kv_heads, heads_per_kv, -1)
        )

    prefix_scores = torch.matmul(by_group(q), prefix_keys.transpose(2, 3))
    if scaling != 1.0:
        prefix_scores *= scaling
    prefix_scores += prefix_bias
    probs = torch.softmax(torch.cat([by_row(prefix_scores), scores], dim=-1), dim=-1, dtype=torch.float32).to(
        q.dtype
    )
    out = by_row(torch.matmul(by_group(probs[..., :shared]), prefix_values))
    out = out + torch.matmul(probs[..., shared:], values)
    return out.reshape(batch, 1, -1)


def _layer_step(
    layer: torch.nn.Module,
    fused: _Fused,
    hidden: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    cache: _SlotCache,
    index: int,
    bias: torch.Tensor,
    slot: torch.Tensor,
) -> torch.Tensor:
    """One token through a Llama decoder layer, with its own modules (LoRA included), in the
    order of HF's ``LlamaDecoderLayer``. Attention is written out: for one query per row, two
    batched matmuls beat SDPA's CPU flash kernel."""
    attn, mlp = layer.self_attn, layer.mlp
    batch = hidden.shape[0]
    head_dim = attn.head_dim
    x = _rms_norm(layer.input_layernorm, hidden)
    # HF's q * cos + rotate_half(q) * sin, with sin's first half negated by the caller so that
    # rotate_half is one roll (-a * b == a * -b exactly, so the values are the same); cos and
    # sin are [batch, 1, head_dim].
    half = head_dim // 2
    if fused.qkv is not None:
        # Queries and keys rotated as one block of heads, straight from the fused projection.
        w, b, sizes = fused.qkv
        qkv = F.linear(x, w, b)
        qk = qkv[..., : sizes[0] + sizes[1]].view(batch, -1, head_dim)
        qk = qk * cos + qk.roll(half, -1) * sin
        n_heads = sizes[0] // head_dim
        q, k = qk[:, :n_heads, None], qk[:, n_heads:, None]
        v = qkv[..., sizes[0] + sizes[1] :].view(batch, -1, 1, head_dim)
    else:
        q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        q = q.reshape(batch, 1, -1, head_dim).transpose(1, 2)
        k = k.reshape(batch, 1, -1, head_dim).transpose(1, 2)
        v = v.reshape(batch, 1, -1, head_dim).transpose(1, 2)
        q = q * cos[:, None] + q.roll(half, -1) * sin[:, None]
        k = k * cos[:, None] + k.roll(half, -1) * sin[:, None]
    keys, values = cache.update(k, v, index, slot)
    shared = cache.prefix
    prefix = None if shared is None else (shared.keys[index], shared.values[index], shared.bias)
    out = _attend(q, keys, values, bias, fused.scaling, prefix)
    hidden = _add_linear(hidden, out, fused.o, attn.o_proj, fused)
    x = _rms_norm(layer.post_attention_layernorm, hidden)
    if fused.gate_up is not None:
        w, b, sizes = fused.gate_up
        gate, up = F.linear(x, w, b).split(sizes, dim=-1)
        act = F.silu(gate, inplace=True).mul_(up) if fused.inplace_silu else mlp.act_fn(gate) * up
        return _add_linear(hidden, act, fused.down, mlp.down_proj, fused)
    return hidden + mlp(x)


@dataclass
class _Prefilled:
    """What the prefill leaves for decoding: each row's cache after the shared prefix
    (``[batch, kv_heads, width, head_dim]`` per layer, left-padded, ``mask`` marking its
    tokens), the position of its next token, the logits it is sampled from, and the groups'
    shared prefix (or None)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor
    next_pos: torch.Tensor
    logits: torch.Tensor
    prefix: SharedPrefix | None


def common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every row has in common."""
    if not rows:
        return 0
    first, n = rows[0], min(map(len, rows))
    for other in rows[1:]:
        n = next((i for i in range(n) if other[i] != first[i]), n)
    return n


def share_groups(rows: Sequence[Sequence[int]]) -> tuple[int, list[int]]:
    """How to cut ``rows`` into groups of consecutive rows that share a prefix: ``(group size,
    shared length of each group)``, or ``(0, [])`` when sharing saves too little.

    Every group size that divides the batch is tried (the whole batch; a GRPO group's
    samples; ...); a group shares its rows' common prefix, short of its shortest row's last
    token (each row prefills at least one token of its own). The split chosen saves the most
    cache reads per decode step (each row's shared length, less each group's prefix read once
    at the longest group's length), and must save ``MIN_SHARED_PREFIX`` per row on average."""
    batch = len(rows)
    if batch < 2:
        return 0, []
    # A block's common prefix is the minimum of its neighbours' common prefixes.
    adjacent = [common_prefix([rows[i], rows[i + 1]]) for i in range(batch - 1)]
    best, best_saving = (0, []), MIN_SHARED_PREFIX * batch - 1
    for size in (d for d in range(2, batch + 1) if batch % d == 0):
        shared = []
        for start in range(0, batch, size):
            block = range(start, start + size)
            common = min(adjacent[start : start + size - 1])
            shared.append(min(common, min(len(rows[i]) for i in block) - 1))
        saving = size * sum(shared) - len(shared) * max(shared)  # each group's prefix is read once, padded
        if saving > best_saving:
            best, best_saving = (size, shared), saving
    return best


def decode_step(
    lm: torch.nn.Module,
    head: torch.nn.Module,
    fused: Sequence[_Fused],
    token: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    bias: torch.Tensor,
    keys: list[torch.Tensor],
    values: list[torch.Tensor],
    slot: torch.Tensor,
    prefix: SharedPrefix | None,
) -> torch.Tensor:
    """The next-token logits ``[batch, vocab]`` (fp32) of one token per row, written into the
    cache buffers at ``slot`` (a one-element index tensor): embedding, the decoder layers (one
    per entry of ``fused``), final norm and head. A function of tensors and the model's
    modules only, so that ``torch.compile`` can trace it once for every step."""
    cache = _SlotCache(keys, values, 0, keys[0].shape[2], prefix)
    hidden = lm.embed_tokens(token[:, None])
    for i, (layer, prepared) in enumerate(zip(lm.layers, fused, strict=False)):
        hidden = _layer_step(layer, prepared, hidden, cos, sin, cache, i, bias, slot)
    return head(lm.norm(hidden))[:, -1, :].float()


_COMPILED: dict[str, Any] = {}


def compiled_step() -> Any:
    """:func:`decode_step` under ``torch.compile`` (inductor; the sizes that vary are marked
    dynamic per call, :func:`_mark_dynamic_dims`), made once per process; None
    once compiling has failed here. Inductor fuses the step's ~190 small ops (norms, RoPE,
    softmax, attention over one query) into a few C++ loops; the first call per model and
    dtype compiles (tens of seconds, less from inductor's on-disk cache)."""
    if "failed" in _COMPILED:
        return None
    if "step" not in _COMPILED:
        import sys

        print(
            "rollout: compiling the decode step (torch.compile, once per process and prompt-sharing case; "
            "tens of seconds cold, seconds from inductor's on-disk cache)",
            file=sys.stderr,
        )
        _COMPILED["step"] = torch.compile(decode_step)
    return _COMPILED["step"]


def _mark_dynamic_dims(
    token: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bias: torch.Tensor, cache: _SlotCache
) -> None:
    """Tell the compiler which sizes vary from step to step, so that one graph serves them
    all: the batch (rows leave), the cache's capacity (it grows), the shared prefix's groups
    and length. Everything else (weights, heads, head dim) stays a constant, which the
    compiled loops need: with every size symbolic (``dynamic=True``) RoPE's roll and the
    attention reductions become symbolic index arithmetic, slower than the uncompiled step."""
    from torch._dynamo import maybe_mark_dynamic

    for t in (token, cos, sin, bias, *cache.keys, *cache.values):
        maybe_mark_dynamic(t, 0)
    maybe_mark_dynamic(bias, 3)
    for t in (*cache.keys, *cache.values):
        maybe_mark_dynamic(t, 2)
    if cache.prefix is not None:
        for t in (*cache.prefix.keys, *cache.prefix.values):
            maybe_mark_dynamic(t, 0)
            maybe_mark_dynamic(t, 2)
        maybe_mark_dynamic(cache.prefix.bias, 0)
        maybe_mark_dynamic(cache.prefix.bias, 3)


def _compile_failed(err: Exception) -> None:
    """Compiling is off for the rest of the process, with one warning naming why."""
    import warnings

    _COMPILED["failed"] = err
    warnings.warn(
        f"rollout compile failed, decoding uncompiled from now on: {type(err).__name__}: {err}".splitlines()[
            0
        ],
        RuntimeWarning,
        stacklevel=3,
    )


class DecodeLoop:
    """Prefill with the model's own forward (pixels included), then one token at a time
    through its decoder layers on a KV cache allocated ``GROW_SLOTS`` at a time.

    Per step it does what HF ``generate`` does for these options, with the same inputs
    (positions from the attention mask, pads masked), so greedy answers are the same ids:
    suppress the image token, forbid eos before ``min_new_tokens``, argmax or sample from
    ``softmax(logits / temperature)``. Rows that ended leave the batch (once they are an
    eighth of it), and the loop stops as soon as every row has ended.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        eos: Sequence[int],
        pad_id: int,
        image_token: int | None,
        min_new: int,
        compile: bool = False,
    ) -> None:
        parts = decoder_parts(model)
        if parts is None:
            raise ValueError(f"{type(model).__name__}: no Llama-family decoder for the decode loop")
        self.model = model
        self.lm, self.head = parts
        self.eos, self.pad_id, self.image_token, self.min_new = list(eos), pad_id, image_token, min_new
        self.compile = compile

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
        batch = ids.shape[0]
        if max_new_tokens <= 0:
            return [[] for _ in range(batch)]
        device = ids.device
        filled = self._prefill(ids, mask, extras)
        width = filled.mask.shape[1]
        total = width + max_new_tokens - 1
        amp = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
        # Under autocast the attention matmuls read keys and values in the autocast dtype: keep
        # the cache in it, so that each value is cast once when written, not on every step's
        # read (the same values), and keys transposed in memory (:func:`_keys_transposed`).
        slots = min(total, width + GROW_SLOTS)
        keys, values = [], []
        for k, v in zip(filled.keys, filled.values, strict=True):
            kb = _zero_slots(k, slots, amp or k.dtype, transposed=amp is not None)
            vb = _zero_slots(v, slots, amp or v.dtype, transposed=False)
            kb[:, :, :width], vb[:, :, :width] = k, v
            keys.append(kb)
            values.append(vb)
        prefix = filled.prefix
        if prefix is not None and amp is not None:
            prefix = SharedPrefix(
                [_keys_transposed(k.to(amp)) for k in prefix.keys],
                [v.to(amp) for v in prefix.values],
                prefix.bias,
            )
        cache = _SlotCache(keys, values, width, total, prefix)
        # Additive mask over every slot this call fills: -inf on a row's prompt pads and on the
        # answer slots not yet written (each step unmasks its own), 0 elsewhere.
        bias_all = torch.zeros(batch, 1, 1, total, device=device)
        bias_all[:, 0, 0, :width].masked_fill_(filled.mask == 0, -float("inf"))
        bias_all[..., width:] = -float("inf")
        logits = filled.logits
        next_pos = filled.next_pos
        del filled
        eos = torch.tensor(self.eos, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        alive = list(range(batch))  # the caller's row of each row still computed
        answers: list[list[int]] = [[] for _ in range(batch)]
        n_layers = self.lm.config.num_hidden_layers
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
            keep, groups = self._rows_to_keep(done, cache.prefix)
            if keep is not None:  # drop ended rows from the batch
                alive = [alive[i] for i in keep.tolist()]
                cache.keys = [_select_rows(k, keep) for k in cache.keys]
                cache.values = [v.index_select(0, keep) for v in cache.values]
                bias_all, next_pos, token = bias_all[keep], next_pos[keep], token[keep]
                if groups is not None:  # whole groups left, with their prefix
                    cache.prefix = cache.prefix.select(groups)
                done = done[keep]
            slot = width + step
            cache.reserve(slot)
            cache.pos = slot
            bias_all[..., slot] = 0.0
            bias = bias_all[
                ..., : cache.capacity
            ].contiguous()  # one stride for any capacity (a compiled step guards on it)
            position_ids = next_pos + step
            cos, sin = cos_table[position_ids], sin_table[position_ids]
            logits = self._step(fused, token, cos, sin, bias, cache)
        return answers

    def _step(
        self,
        fused: list[_Fused],
        token: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        bias: torch.Tensor,
        cache: _SlotCache,
    ) -> torch.Tensor:
        """One decode step, compiled where asked and possible (:func:`compiled_step`)."""
        slot = torch.tensor([cache.pos], device=token.device)
        args = (
            self.lm,
            self.head,
            fused,
            token,
            cos,
            sin,
            bias,
            cache.keys,
            cache.values,
            slot,
            cache.prefix,
        )
        step = compiled_step() if self.compile else None
        if step is not None:
            _mark_dynamic_dims(token, cos, sin, bias, cache)
            try:
                return step(*args)
            except Exception as err:  # no compiler, or a graph inductor cannot build
                _compile_failed(err)
        return decode_step(*args)

    def _prefill(self, ids: torch.Tensor, mask: torch.Tensor, extras: dict[str, Any]) -> _Prefilled:
        """The prompts through the model's own forward, sharing what rows share: each group's
        common prefix (:func:`share_groups`) runs once and is kept once, then every row's own
        tail runs on top of it. Rows with extra inputs (images) each run as they are."""
        device = ids.device
        rows = [r[m.bool()].tolist() for r, m in zip(ids.cpu(), mask.cpu(), strict=True)]
        size, shared = (0, []) if extras else share_groups(rows)
        past, prefix, head_mask = None, None, None
        starts = [0] * len(rows)
        if size:
            # Right-padded, so that a group's tokens keep positions 0..n-1.
            heads = [rows[g * size][:n] for g, n in enumerate(shared)]
            head_ids, head_mask = (t.to(device) for t in pad_ids(heads, self.pad_id, "right"))
            width = head_mask.shape[1]
            head = self.model(input_ids=head_ids, attention_mask=head_mask, use_cache=True, logits_to_keep=1)
            past = head.past_key_values
            bias = torch.zeros(len(shared), 1, 1, width, device=device)
            bias.masked_fill_(head_mask[:, None, None, :] == 0, -float("inf"))
            prefix = SharedPrefix(
                [layer.keys for layer in past.layers], [layer.values for layer in past.layers], bias
            )
            past.batch_repeat_interleave(size)
            head_mask = head_mask.repeat_interleave(size, dim=0)
            starts = [shared[i // size] for i in range(len(rows))]
            del head
        tails = [r[n:] for r, n in zip(rows, starts, strict=True)]
        tail_ids, tail_mask = (t.to(device) for t in pad_ids(tails, self.pad_id, "left"))
        pos = torch.tensor(starts, device=device)[:, None] + tail_mask.long().cumsum(-1) - 1
        pos.masked_fill_(tail_mask == 0, 1)
        attention_mask = tail_mask if head_mask is None else torch.cat([head_mask, tail_mask], dim=1)
        out = self.model(
            input_ids=tail_ids,
            attention_mask=attention_mask,
            position_ids=pos,
            past_key_values=past,
            use_cache=True,
            logits_to_keep=1,
            **extras,
        )
        skip = 0 if head_mask is None else head_mask.shape[1]
        keys = [layer.keys[:, :, skip:] for layer in out.past_key_values.layers]
        values = [layer.values[:, :, skip:] for layer in out.past_key_values.layers]
        return _Prefilled(keys, values, tail_mask, pos[:, -1:] + 1, out.logits[:, -1, :].float(), prefix)

    @staticmethod
    def _rows_to_keep(
        done: torch.Tensor, prefix: SharedPrefix | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(rows to go on with, shared-prefix groups to go on with) once enough have ended (an
        eighth of the batch), else None for the rows. Rows of one shared prefix group stay
        together: with several groups, a group leaves only when all its rows have ended (its
        prefix leaves with it; ended rows of a group still running are computed and ignored);
        one group for the batch shares its prefix with any rows (groups None)."""
        if prefix is None or prefix.groups == 1:
            if int(done.sum()) * COMPACT_FRACTION < len(done):
                return None, None
            return (~done).nonzero().squeeze(1), None
        finished = done.view(prefix.groups, -1).all(dim=1)
        if int(finished.sum()) * COMPACT_FRACTION < prefix.groups:
            return None, None
        rows = done.shape[0] // prefix.groups
        kept = (~finished).nonzero().squeeze(1)
        return (kept[:, None] * rows + torch.arange(rows, device=done.device)).reshape(-1), kept

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
        # Inverse-CDF sampling: one uniform draw per row (multinomial draws one per token).
        # In float64, a token of probability 0 adds nothing to the CDF and is never found;
        # the CDF's first maximum is the last token of positive probability, a bound for
        # a draw that rounds up to the total.
        cdf = probs.double().cumsum(-1)
        u = torch.rand(probs.shape[0], 1, dtype=torch.float64, device=probs.device, generator=gen)
        picked = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
        return torch.minimum(picked, cdf.argmax(-1, keepdim=True)).squeeze(1)


__all__ = [
    "COMPACT_FRACTION",
    "GROW_SLOTS",
    "LOOP_MODEL_TYPES",
    "MIN_SHARED_PREFIX",
    "DecodeLoop",
    "SharedPrefix",
    "common_prefix",
    "compiled_step",
    "decode_step",
    "decoder_parts",
    "share_groups",
]
