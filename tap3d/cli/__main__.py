"""``python -m tap3d.cli``: ``tap-cli`` (torchrun starts the training commands this way)."""

from tap3d.cli.group import main
from tap3d.cli import build, evaluate, sweep, train  # noqa: F401 (each registers its commands)

main()
