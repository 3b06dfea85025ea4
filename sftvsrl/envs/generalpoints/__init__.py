"""GeneralPoints: make the target (24) from four cards with + - * / and parentheses.

Public API: ``solve``, ``solve_all`` (exact solver), ``verify`` -> ``Verdict`` (the only
source of rewards), and the Gymnasium env ``GeneralPointsEnv`` (registered for the -L and
-VL tasks in ``sftvsrl.envs.tasks``).
"""

from sftvsrl.envs.generalpoints.solver import solve, solve_all
from sftvsrl.envs.generalpoints.verifier import OUTCOMES, REWARDS, Verdict, verify

__all__ = ["OUTCOMES", "REWARDS", "Verdict", "solve", "solve_all", "verify"]
