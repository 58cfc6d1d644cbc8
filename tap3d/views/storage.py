"""Where a dataset lives: one zarr store per path or URL, whose failures name the store and key.

Every reader and writer of a ``tap3d.views`` dataset opens its store with :func:`open_store`: a
local path becomes a ``zarr.storage.LocalStore``, an fsspec URL (``s3://``, ``gs://``,
``memory://``, ...) a ``zarr.storage.FsspecStore``, as ``zarr.open_group`` makes them, wrapped
in :class:`NamingStore`. An exception of the storage itself (a network error once the
filesystem's own retries are spent, a full disk, a permission error) then reaches the user as
one :class:`StorageError` line that names the store, the key and the cause, never as a format
error or a 100-line asyncio traceback. A key that does not exist is not an error: zarr reads it
as the array's fill value, as before.
"""

from __future__ import annotations

import os
from typing import Any

from zarr.storage import WrapperStore

__all__ = ["StorageError", "NamingStore", "open_store", "store_name", "is_url"]


class StorageError(RuntimeError):
    """The storage failed to read, write, list or delete a key (not a defect of the data).

    The message is one line: ``STORE: KEY: could not <action> (<cause>)``; re-running the same
    command once the storage works again loses nothing.
    """


def is_url(store: str) -> bool:
    """True for an fsspec URL (``protocol://...`` other than ``file://``)."""
    return "://" in store and not store.startswith("file://")


def store_name(store) -> str:
    """How messages name a store: the path or URL it was opened from."""
    if isinstance(store, NamingStore):
        return store.name
    if isinstance(store, (str, os.PathLike)):
        return os.fspath(store)
    return str(store)


def _cause(error: BaseException) -> str:
    """The first line of an exception: its type and message (``OSError: [Errno 28] ...``)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


class NamingStore(WrapperStore):
    """A zarr store that turns every failure of the wrapped store into a :class:`StorageError`
    naming the store and the key (zarr's ``WrapperStore``: everything else is delegated).

    Args:
        store: the ``zarr.abc.store.Store`` to wrap.
        name: the path or URL to name in messages (default: ``str(store)``).
    """

    def __init__(self, store, name: str | None = None) -> None:
        super().__init__(store)
        self.name = name or str(store)

    def _with_store(self, store):
        return type(self)(store, self.name)

    def _fail(self, action: str, key: str, error: Exception) -> StorageError:
        return StorageError(f"{self.name}: {key or '(group)'}: could not {action} "
                            f"({_cause(error)})")

    async def get(self, key, prototype, byte_range=None):
        try:
            return await self._store.get(key, prototype, byte_range)
        except Exception as error:  # noqa: BLE001 - any failure of the storage
            raise self._fail("read", key, error) from error

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        try:
            return await self._store.get_partial_values(prototype, key_ranges)
        except Exception as error:  # noqa: BLE001
            keys = sorted({key for key, _ in key_ranges})
            raise self._fail("read", ", ".join(keys[:3]) + (" ..." if len(keys) > 3 else ""),
                             error) from error

    async def exists(self, key):
        try:
            return await self._store.exists(key)
        except Exception as error:  # noqa: BLE001
            raise self._fail("look up", key, error) from error

    async def set(self, key, value):
        try:
            await self._store.set(key, value)
        except Exception as error:  # noqa: BLE001
            raise self._fail("write", key, error) from error

    async def set_if_not_exists(self, key, value):
        try:
            return await self._store.set_if_not_exists(key, value)
        except Exception as error:  # noqa: BLE001
            raise self._fail("write", key, error) from error

    async def _set_many(self, values):
        values = list(values)
        for key, value in values:
            await self.set(key, value)

    async def delete(self, key):
        try:
            await self._store.delete(key)
        except Exception as error:  # noqa: BLE001
            raise self._fail("delete", key, error) from error

    async def delete_dir(self, prefix):
        try:
            return await self._store.delete_dir(prefix)
        except Exception as error:  # noqa: BLE001
            raise self._fail("delete", prefix, error) from error

    async def _listed(self, action: str, prefix: str, items):
        try:
            async for item in items:
                yield item
        except Exception as error:  # noqa: BLE001
            raise self._fail(action, prefix, error) from error

    def list(self):
        return self._listed("list", "", self._store.list())

    def list_prefix(self, prefix):
        return self._listed("list", prefix, self._store.list_prefix(prefix))

    def list_dir(self, prefix):
        return self._listed("list", prefix, self._store.list_dir(prefix))

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"NamingStore({self.name!r})"


def open_store(store, mode: str = "r", storage_options: dict[str, Any] | None = None):
    """The zarr store of a dataset, wrapped so that storage failures name it.

    Args:
        store: a local path, an fsspec URL, or a zarr store (wrapped as it is; a
            :class:`NamingStore` is returned unchanged).
        mode: ``r`` (read only), ``r+``, ``a``, ``w`` or ``w-`` (as ``zarr.open_group``).
        storage_options: fsspec options for a URL.

    Returns:
        A :class:`NamingStore`.
    """
    from zarr.abc.store import Store
    from zarr.storage import FsspecStore, LocalStore

    if isinstance(store, NamingStore):
        return store
    if isinstance(store, Store):
        return NamingStore(store)
    name = os.fspath(store)
    read_only = mode == "r"
    if is_url(name):
        inner = FsspecStore.from_url(name, storage_options=storage_options, read_only=read_only)
    else:
        path = name[len("file://"):] if name.startswith("file://") else name
        inner = LocalStore(path, read_only=read_only)
    return NamingStore(inner, name)
