"""URI-addressed object storage with the same semantics on local disk and on GCS.

Every write is atomic: a reader sees the old object or the new one, never half of one. The
registry needs two stronger writes:

- `create(key, data)`: succeeds only if nothing is at `key` (GCS `if_generation_match=0`;
  locally a hard link, which fails atomically if the name exists).
- `compare_and_swap(key, data, expected)`: replaces the object only if it is still at the
  generation the caller read (GCS generation preconditions; locally a lock plus an atomic
  rename, with the generation kept as a counter beside the object).

Keys are relative, '/'-separated paths below the store's root. A key that tries to leave the
root ('..', an absolute path, a scheme) is refused with a `ValidationError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import posixpath
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrain.errors import AlreadyExists, NotFound, PreconditionFailed, TransientError, ValidationError

__all__ = ["GCSStorage", "LocalStorage", "Storage", "check_key", "open_storage"]

#: Generation value meaning "no object here yet" (as in GCS preconditions).
NO_OBJECT = 0


def check_key(key: str) -> str:
    """Normalise a key and refuse one that escapes the root.

    Segments starting with '.' are refused too: the local backend keeps its generation
    counters and locks in such names, so a key like 'a/.b.generation' must not reach them.
    """
    if (
        not isinstance(key, str)
        or not key
        or "://" in key
        or key.startswith("/")
        or "\\" in key
        or any(ord(c) < 32 for c in key)
    ):
        raise ValidationError(f"storage key {key!r} must be a relative path inside the storage root")
    norm = posixpath.normpath(key)
    if norm == "." or norm.startswith("../") or norm == ".." or "/../" in f"/{norm}/":
        raise ValidationError(f"storage key {key!r} escapes the storage root")
    if any(seg.startswith(".") for seg in norm.split("/")):
        raise ValidationError(
            f"storage key {key!r} has a segment starting with '.', which is reserved"
        )
    return norm


class Storage(ABC):
    """An object store rooted at one URI."""

    root: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object's bytes. Raises NotFound."""

    @abstractmethod
    def generation(self, key: str) -> int:
        """The object's current generation, or NO_OBJECT (0) if absent."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Atomically write (replace) an object."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> None:
        """Write only if no object is at `key`; else raise AlreadyExists."""

    @abstractmethod
    def compare_and_swap(self, key: str, data: bytes, expected_generation: int) -> int:
        """Replace only if the generation is still `expected_generation` (0: must not exist).

        Returns the new generation; raises PreconditionFailed if someone else wrote first.
        """

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Keys below a prefix (recursive), sorted."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """The full URI of a key (for model cards, manifests, reports)."""

    def exists(self, key: str) -> bool:
        return self.generation(key) != NO_OBJECT

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode()

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode())

    def read_versioned(self, key: str) -> tuple[bytes | None, int]:
        """Bytes and generation read together (None, 0 if absent), for compare-and-swap."""
        gen = self.generation(key)
        if gen == NO_OBJECT:
            return None, NO_OBJECT
        try:
            data = self.read_bytes(key)
        except NotFound:
            return None, NO_OBJECT
        # An object replaced between the two calls shows a newer generation: the CAS that
        # follows fails as it should, so reading the generation first is the safe order.
        return data, gen


class LocalStorage(Storage):
    """A directory on the local filesystem."""

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).expanduser().resolve()
        self.root = str(self._root)

    def _path(self, key: str) -> Path:
        return self._root / check_key(key)

    def _gen_path(self, key: str) -> Path:
        p = self._path(key)
        return p.parent / f".{p.name}.generation"

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no object at {self.uri(key)}") from None
        except IsADirectoryError:
            raise NotFound(f"{self.uri(key)} is a directory, not an object") from None

    def generation(self, key: str) -> int:
        p = self._path(key)
        if not p.is_file():
            return NO_OBJECT
        try:
            return int(self._gen_path(key).read_text())
        except (FileNotFoundError, ValueError):
            return 1  # written by something other than this class: first generation

    def _stage(self, key: str, data: bytes) -> Path:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p.parent / f".{p.name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _bump(self, key: str, new_gen: int) -> None:
        gp = self._gen_path(key)
        tmp = gp.with_name(gp.name + ".tmp")
        tmp.write_text(str(new_gen))
        os.replace(tmp, gp)

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._locked(key):
            gen = self.generation(key)
            tmp = self._stage(key, data)
            os.replace(tmp, self._path(key))
            self._bump(key, gen + 1)

    def create(self, key: str, data: bytes) -> None:
        with self._locked(key):
            tmp = self._stage(key, data)
            try:
                os.link(tmp, self._path(key))  # atomic; fails if the name exists
            except FileExistsError:
                raise AlreadyExists(f"{self.uri(key)} already exists (create-only)") from None
            finally:
                tmp.unlink(missing_ok=True)
            self._bump(key, 1)

    def compare_and_swap(self, key: str, data: bytes, expected_generation: int) -> int:
        with self._locked(key):
            current = self.generation(key)
            if current != expected_generation:
                raise PreconditionFailed(
                    f"{self.uri(key)} changed (generation {current}, expected {expected_generation})"
                )
            tmp = self._stage(key, data)
            os.replace(tmp, self._path(key))
            self._bump(key, current + 1)
            return current + 1

    def list(self, prefix: str) -> list[str]:
        base = self._root if prefix in ("", ".") else self._path(prefix)
        if not base.exists():
            return []
        if base.is_file():
            return [prefix]
        out = []
        for p in base.rglob("*"):
            if p.is_file() and not p.name.startswith("."):
                out.append(p.relative_to(self._root).as_posix())
        return sorted(out)


class GCSStorage(Storage):
    """A bucket (and optional prefix) on Google Cloud Storage.

    Generations are GCS object generations; preconditions are sent with every conditional
    write, so the service itself arbitrates races. Honours STORAGE_EMULATOR_HOST through the
    official client.
    """

    def __init__(self, root: str, client: Any | None = None) -> None:
        if not root.startswith("gs://"):
            raise ValidationError(f"not a gs:// URI: {root}")
        bucket, _, prefix = root[len("gs://") :].partition("/")
        if not bucket:
            raise ValidationError(f"no bucket in {root}")
        from google.cloud import storage as gcs

        self._client = client if client is not None else gcs.Client()
        self._bucket = self._client.bucket(bucket)
        self._prefix = prefix.strip("/")
        self.root = f"gs://{bucket}" + (f"/{self._prefix}" if self._prefix else "")

    def _name(self, key: str) -> str:
        k = check_key(key)
        return f"{self._prefix}/{k}" if self._prefix else k

    def uri(self, key: str) -> str:
        return f"gs://{self._bucket.name}/{self._name(key)}"

    @contextlib.contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        from google.api_core import exceptions as gexc

        try:
            yield
        except gexc.NotFound:
            raise NotFound(f"no object at {self.uri(key)}") from None
        except gexc.PreconditionFailed:
            raise PreconditionFailed(f"{self.uri(key)} changed before our write") from None
        except (gexc.ServiceUnavailable, gexc.TooManyRequests, gexc.InternalServerError,
                gexc.GatewayTimeout, ConnectionError) as err:
            raise TransientError(f"GCS error on {self.uri(key)}: {err}") from err

    def read_bytes(self, key: str) -> bytes:
        with self._errors(key):
            return bytes(self._bucket.blob(self._name(key)).download_as_bytes())

    def generation(self, key: str) -> int:
        with self._errors(key):
            blob = self._bucket.get_blob(self._name(key))
        return int(blob.generation) if blob is not None else NO_OBJECT

    def write_bytes(self, key: str, data: bytes) -> None:
        # A single-request upload is atomic on GCS: the object appears whole or not at all.
        with self._errors(key):
            self._bucket.blob(self._name(key)).upload_from_string(data)

    def create(self, key: str, data: bytes) -> None:
        try:
            with self._errors(key):
                self._bucket.blob(self._name(key)).upload_from_string(data, if_generation_match=0)
        except PreconditionFailed:
            raise AlreadyExists(f"{self.uri(key)} already exists (create-only)") from None

    def compare_and_swap(self, key: str, data: bytes, expected_generation: int) -> int:
        blob = self._bucket.blob(self._name(key))
        with self._errors(key):
            blob.upload_from_string(data, if_generation_match=expected_generation)
        return int(blob.generation)

    def list(self, prefix: str) -> list[str]:
        full = self._name(prefix) if prefix not in ("", ".") else self._prefix
        strip = f"{self._prefix}/" if self._prefix else ""
        with self._errors(prefix):
            names = [b.name for b in self._client.list_blobs(self._bucket, prefix=full)]
        return sorted(n[len(strip):] for n in names if not n.endswith("/"))


def open_storage(root: str, client: Any | None = None) -> Storage:
    """The store for a root URI: `gs://bucket/prefix` or a local path (or file://path)."""
    if root.startswith("gs://"):
        return GCSStorage(root, client=client)
    if root.startswith("file://"):
        return LocalStorage(root[len("file://") :])
    if "://" in root:
        raise ValidationError(f"unsupported storage URI scheme: {root} (use a path or gs://)")
    return LocalStorage(root)
