"""Built-in tiny models made from configs (random init, nothing downloaded).

They use the real HF classes (Llama, LLaVA with a SigLIP vision tower, a real LlavaProcessor)
so that the code that trains and evaluates them is exactly the code that loads a pretrained
Llama-3.2-Vision or Qwen-VL from a local folder.
"""

from __future__ import annotations

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
)

from sftvsrl.models.tokenizer import build_char_tokenizer

TINY_NAMES = ("tiny-lm", "tiny-vlm")

# ~3.2M parameters with the 100-token char vocabulary: big enough to memorise GeneralPoints
# answers in minutes on a laptop CPU, small enough to train at >10k tokens/s there.
TINY_LM = {
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 1024,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
}

# SigLIP (no CLS token): image tokens = (image_size / patch_size) ** 2 = 49, "full" features.
TINY_VISION = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 224,
    "patch_size": 32,
}


def tiny_llama_config(tokenizer: PreTrainedTokenizerBase, **overrides: object) -> LlamaConfig:
    """A small Llama whose vocabulary and special ids come from ``tokenizer``."""
    spec = {**TINY_LM, **overrides}
    return LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **spec,
    )


def build_tiny_lm(seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fresh, seeded tiny Llama and its char tokenizer."""
    tokenizer = build_char_tokenizer()
    config = tiny_llama_config(tokenizer)
    with _seeded(seed):
        model = LlamaForCausalLM(config)
    _set_generation_ids(model, tokenizer)
    return model, tokenizer


def build_tiny_vlm(seed: int = 0) -> tuple[PreTrainedModel, LlavaProcessor]:
    """A fresh, seeded LLaVA-style model (SigLIP tower + projector + tiny Llama) and processor."""
    tokenizer = build_char_tokenizer()
    vision = SiglipVisionConfig(**TINY_VISION)
    text = tiny_llama_config(tokenizer)
    n_image_tokens = (vision.image_size // vision.patch_size) ** 2
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.image_token_id,
        image_seq_length=n_image_tokens,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    image_processor = SiglipImageProcessorPil(
        size={"height": vision.image_size, "width": vision.image_size},
        do_resize=True,
        do_rescale=True,
        do_normalize=True,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        image_token=tokenizer.image_token,
        chat_template=tokenizer.chat_template,
    )
    with _seeded(seed):
        model = LlavaForConditionalGeneration(config)
    _set_generation_ids(model, tokenizer)
    return model, processor


def _set_generation_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    gen = model.generation_config
    gen.bos_token_id = tokenizer.bos_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id


class _seeded:
    """Fork the torch RNG so building a model neither depends on nor disturbs global state."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        self._fork.__exit__(*exc)
