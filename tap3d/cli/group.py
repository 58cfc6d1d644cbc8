"""The ``tap-cli`` command group, which every command module of :mod:`tap3d.cli` joins."""

from __future__ import annotations

import click

from tap3d import __version__

__all__ = ["main"]


class _Commands(click.Group):
    """``tap-cli``: a failure of the storage under any command (a network error past the
    filesystem's retries, a full disk) ends it with one line naming the store, the key and the
    cause (:class:`tap3d.views.storage.StorageError`), exit status 1."""

    def invoke(self, ctx):
        from tap3d.views.storage import StorageError

        try:
            return super().invoke(ctx)
        except StorageError as error:
            raise click.ClickException(f"storage error: {error}") from None


@click.group(cls=_Commands)
@click.version_option(__version__, prog_name="tap-cli")
def main():
    """tap3d: multi-view datasets from meshes and Take-A-Photo pre-training."""
