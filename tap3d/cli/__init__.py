"""``tap-cli``: thin click commands, each calling one library function.

The group is :data:`tap3d.cli.group.main`; the commands join it from :mod:`tap3d.cli.build`
(the dataset), :mod:`tap3d.cli.train` (training), :mod:`tap3d.cli.evaluate` (what uses
trained weights) and :mod:`tap3d.cli.sweep` (grids of experiments); settings options are made
from the settings classes by :mod:`tap3d.cli.options`.
"""

from tap3d.cli import build, evaluate, sweep, train  # noqa: F401 (each registers its commands)
from tap3d.cli.group import main

__all__ = ["main"]
