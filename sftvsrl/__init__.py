"""sftvsrl: does post-training learn the rule or memorize the data?

Importing the package registers the Gymnasium environments
(``sftvsrl/GeneralPoints-L-v0``, ``sftvsrl/GeneralPoints-VL-v0``, ``sftvsrl/VIRL-L-v0``,
``sftvsrl/VIRL-VL-v0``).
"""

from sftvsrl.envs import register_envs

__version__ = "0.1.0"

register_envs()
