"""Trainers: SFT and multi-turn PPO, rollouts, checkpoints."""
