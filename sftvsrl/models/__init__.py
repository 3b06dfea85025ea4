"""Model loading and building: HF language and vision-language models, tiny configs, LoRA.

Public API (imported on first use, so ``import sftvsrl.models`` does not load torch):
``load_model``, ``load_checkpoint``, ``save_model``, ``PolicyModel``, ``LoraSettings``,
``Checkpoint`` (from ``sftvsrl.models.loading``); ``encode_prompts``, ``encode_sft_batch``
(from ``sftvsrl.models.encoding``).
"""

from sftvsrl._lazy import lazy_exports

_NAMES = {
    **dict.fromkeys(
        ["load_model", "load_checkpoint", "save_model", "PolicyModel", "LoraSettings", "Checkpoint"],
        "sftvsrl.models.loading",
    ),
    **dict.fromkeys(["encode_prompts", "encode_sft_batch"], "sftvsrl.models.encoding"),
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
