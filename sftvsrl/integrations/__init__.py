"""Adapters that run the study's tasks on other engines (verl, TRL).

Nothing in the core package imports this sub-package. ``common`` and ``export`` need only the
core dependencies; ``verl_agent`` needs ``pip install -e .[verl]`` and ``trl`` needs
``pip install -e .[trl]``. ``verl.compute_score`` itself needs nothing beyond the core, so a
verl worker can import it without the rest of verl being importable in the test venv.
"""
