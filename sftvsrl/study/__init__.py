"""The SFT-vs-RL study: stages, presets, curves, plots, report."""
