"""sftvsrl: does post-training learn the rule or memorize the data?

Importing the package registers the Gymnasium environment of every task in the task
registry (``sftvsrl.envs.tasks``), so ``gym.make`` works on their ids right after
``import sftvsrl``; the package's own code does not rely on that.
"""

from sftvsrl.envs import register_envs

__version__ = "0.1.0"

register_envs()
