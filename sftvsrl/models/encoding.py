"""Turning observations and answers into model inputs, for any tokenizer.

No token id is hard-coded: the prompt is the chat template with a generation prompt, the
completion is tokenized on its own and followed by the tokenizer's eos id, and the sequences
are joined by concatenating id lists. The prompt/answer boundary is therefore exact, and it is
the same boundary generation produces (prompt ids, then generated ids), which PPO relies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sftvsrl.models.loading import PolicyModel

IGNORE_INDEX = -100
ImageLike = np.ndarray | Image.Image | str | Path
Observation = str | dict[str, Any]
TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


def observation_text(obs: Observation) -> str:
    if isinstance(obs, str):
        return obs
    if isinstance(obs, dict) and isinstance(obs.get("text"), str):
        return obs["text"]
    raise TypeError(f"an observation is a str or a dict with 'text' (and 'image'), got {type(obs).__name__}")


def to_pil(image: ImageLike) -> Image.Image:
    """Accept an HxWx3 uint8 array, a PIL image or an image path."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, Path)):
        with Image.open(image) as im:
            return im.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"an image array must be HxWx3, got shape {arr.shape}")
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def chat_prompt(pm: PolicyModel, obs: Observation) -> str:
    """The prompt text through the model's chat template, ending where the answer starts."""
    text = observation_text(obs)
    if pm.is_vision:
        content: Any = [{"type": "image"}, {"type": "text", "text": text}]
        template_owner: Any = pm.processor
    else:
        content = text
        template_owner = pm.tokenizer
    messages = [{"role": "user", "content": content}]
    if getattr(template_owner, "chat_template", None) is None:
        raise ValueError(f"{pm.source}: the tokenizer/processor has no chat template")
    return template_owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _images(pm: PolicyModel, observations: Sequence[Observation]) -> list[Image.Image]:
    images = []
    for i, obs in enumerate(observations):
        if not isinstance(obs, dict) or obs.get("image") is None:
            raise ValueError(f"observation {i}: a vision-language model needs {{'text', 'image'}}")
        images.append(to_pil(obs["image"]))
    return images


def encode_prompt_parts(pm: PolicyModel, observations: Sequence[Observation]) -> tuple[list[list[int]], dict]:
    """Per-example prompt ids (unpadded; image placeholders already expanded) and the vision
    tensors (``pixel_values`` and whatever else the processor returns) for the batch."""
    texts = [chat_prompt(pm, obs) for obs in observations]
    tok = pm.tokenizer
    if not pm.is_vision:
        ids = tok(texts, add_special_tokens=False)["input_ids"]
        return [list(x) for x in ids], {}
    images = _images(pm, observations)
    old_side = tok.padding_side
    tok.padding_side = "right"
    try:
        batch = pm.processor(
            text=texts, images=images, padding=True, add_special_tokens=False, return_tensors="pt"
        )
    finally:
        tok.padding_side = old_side
    mask = batch["attention_mask"].bool()
    ids = [row[m].tolist() for row, m in zip(batch["input_ids"], mask, strict=True)]
    vision = {k: v for k, v in batch.items() if k not in TEXT_KEYS}
    return ids, vision


def completion_ids(pm: PolicyModel, completions: Sequence[str], add_eos: bool = True) -> list[list[int]]:
    """Answer ids as generation would emit them: the text's own tokens, then eos."""
    out = []
    ids = pm.tokenizer(list(completions), add_special_tokens=False)["input_ids"]
    for row in ids:
        row = list(row)
        if add_eos:
            row.append(pm.tokenizer.eos_token_id)
        out.append(row)
    return out


def pad_ids(rows: Sequence[Sequence[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists into (ids, attention_mask) tensors on the given side."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row)
        if n == 0:
            continue
        sl = slice(width - n, width) if side == "left" else slice(0, n)
        ids[i, sl] = torch.tensor(list(row), dtype=torch.long)
        mask[i, sl] = 1
    return ids, mask


def pack_sequences(
    prompt_ids: Sequence[Sequence[int]],
    answer_ids: Sequence[Sequence[int]],
    pad_id: int,
    side: str = "right",
) -> dict[str, torch.Tensor]:
    """Concatenate prompt + answer per example; ``labels`` hold answer ids and -100 elsewhere,
    ``completion_mask`` is 1 on answer tokens. Used by SFT and to rebuild PPO sequences."""
    if len(prompt_ids) != len(answer_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(answer_ids)} answers")
    seqs = [list(p) + list(a) for p, a in zip(prompt_ids, answer_ids, strict=True)]
    ids, mask = pad_ids(seqs, pad_id, side)
    labels = torch.full_like(ids, IGNORE_INDEX)
    completion = torch.zeros_like(ids)
    width = ids.shape[1]
    for i, (p, a) in enumerate(zip(prompt_ids, answer_ids, strict=True)):
        start = (width - len(p) - len(a) if side == "left" else 0) + len(p)
        labels[i, start : start + len(a)] = torch.tensor(list(a), dtype=torch.long)
        completion[i, start : start + len(a)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "completion_mask": completion}


def encode_prompts(pm: PolicyModel, observations: Sequence[Observation]) -> dict[str, torch.Tensor]:
    """Left-padded prompts ready for ``model.generate`` (plus vision tensors for a VLM)."""
    ids, vision = encode_prompt_parts(pm, observations)
    input_ids, attention_mask = pad_ids(ids, pm.tokenizer.pad_token_id, "left")
    return {"input_ids": input_ids, "attention_mask": attention_mask, **vision}


def encode_sft_batch(
    pm: PolicyModel, observations: Sequence[Observation], completions: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Right-padded prompt + completion + eos with labels only on completion and eos."""
    prompts, vision = encode_prompt_parts(pm, observations)
    answers = completion_ids(pm, completions)
    batch = pack_sequences(prompts, answers, pm.tokenizer.pad_token_id, side="right")
    return {**batch, **vision}
