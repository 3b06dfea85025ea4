"""Model loading and building: HF language and vision-language models, tiny configs, LoRA."""
