"""Batched multi-turn evaluation with Wilson intervals."""
