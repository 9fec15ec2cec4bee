"""A local folder as the artifact store (the default)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipeline.stores.base import StoreError, Versioned

__all__ = ["FolderStore"]


class FolderStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise StoreError(f"{key}: key leaves the store")
        return path

    def read_versioned(self, key: str) -> Versioned | None:
        data = self.read(key)
        return None if data is None else Versioned(data=data, version=_version(data))

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # no such object (a file where a folder would be)
            return None
        except OSError as error:
            raise StoreError(f"{self.root}/{key}: cannot read: {error.strerror or error}") from error

    def size(self, key: str) -> int | None:
        try:
            path = self._path(key)
            return path.stat().st_size if path.is_file() else None
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise StoreError(f"{self.root}/{key}: cannot read: {error.strerror or error}") from error

    def read_range(self, key: str, start: int, length: int) -> bytes:
        _check_range(start, length)
        try:
            with self._path(key).open("rb") as handle:
                handle.seek(start)
                return handle.read(length)
        except (FileNotFoundError, NotADirectoryError) as error:
            raise StoreError(f"{self.root}/{key}: no such object") from error
        except OSError as error:
            raise StoreError(f"{self.root}/{key}: cannot read: {error.strerror or error}") from error

    def list(self, prefix: str) -> list[str]:
        root = self.root.resolve()
        base = self._path(prefix) if prefix else root
        if not base.is_dir():
            return []
        return sorted(path.relative_to(root).as_posix() for path in base.rglob("*")
                      if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts))

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            raise StoreError(f"{self.root}/{key}: cannot delete: {error.strerror or error}") from error
        # Folders left empty go too, as prefixes do on S3 (a failed call leaves no folder behind).
        root = self.root.resolve()
        for folder in path.parents:
            if folder == root or root not in folder.parents:
                break
            try:
                folder.rmdir()
            except OSError:  # not empty, or already gone
                break

    def write(self, key: str, data: bytes, *, only_if_absent: bool = False, if_version: str | None = None) -> bool:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if if_version is not None:
                # Compare and replace under an exclusive lock of this key (a file under .locks/): every
                # conditional writer of the key, in any process on this machine, takes the same lock.
                with _locked(self._lock_path(key)):
                    current = self.read(key)
                    if current is None or _version(current) != if_version:
                        return False
                    return self._put(path, data, only_if_absent=False)
            return self._put(path, data, only_if_absent=only_if_absent)
        except OSError as error:
            raise StoreError(f"{self.root}/{key}: cannot write: {error.strerror or error}") from error

    def _lock_path(self, key: str) -> Path:
        # Beside the store's objects, not among them: a call's folder holds only its artifacts.
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return locks / (key.replace("/", "%") + ".lock")

    @staticmethod
    def _put(path: Path, data: bytes, *, only_if_absent: bool) -> bool:
        for attempt in range(3):
            try:
                handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
                break
            except FileNotFoundError:  # another process removed the folder as it emptied: make it again
                if attempt == 2:
                    raise
                path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if only_if_absent:
                try:
                    os.link(handle.name, path)  # atomic "create if absent": fails when the name exists
                except FileExistsError:
                    return False
                finally:
                    Path(handle.name).unlink(missing_ok=True)
            else:
                os.replace(handle.name, path)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
        return True


def _check_range(start: int, length: int) -> None:
    if start < 0 or length < 0:
        raise ValueError(f"a range needs start >= 0 and length >= 0, not {start} and {length}")


def _version(data: bytes) -> str:
    # The content's hash, as S3's ETag of a plain upload is: equal bytes, equal version.
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
