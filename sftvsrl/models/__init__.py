"""Model loading and building: HF language and vision-language models, tiny configs, LoRA.

Public API (import from the submodules; this package does not import torch eagerly):
``sftvsrl.models.loading``: PolicyModel, LoraSettings, load_model, save_model, autocast, unwrap.
``sftvsrl.models.encoding``: encode_prompts, encode_sft_batch, encode_prompt_parts,
completion_ids, pack_sequences, pad_ids, IGNORE_INDEX.
"""
