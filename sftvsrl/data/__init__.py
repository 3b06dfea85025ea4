"""Expert-data generation: prompt/completion JSONL for SFT."""
