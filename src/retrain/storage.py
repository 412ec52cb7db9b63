"""URI-addressed object storage with the same semantics on local disk and on GCS.

Every write is atomic: a reader sees the old object or the new one, never half of one. The
registry needs two stronger writes:

- `create(key, data)`: succeeds only if nothing is at `key` (GCS `if_generation_match=0`;
  locally a hard link, which fails atomically if the name exists).
- `compare_and_swap(key, data, expected)`: replaces the object only if it is still at the
  generation the caller read (GCS generation preconditions; locally a lock plus an atomic
  rename, with the generation kept as a counter beside the object).

Keys are relative, '/'-separated paths below the store's root. A key that tries to leave the
root ('..', an absolute path, a scheme) is refused with a `ValidationError`. `list(prefix)`
matches whole path segments: `list("a")` returns `a/...` keys, never `ab/...`.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import functools
import io
import os
import posixpath
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from retrain._gcs import shared_client
from retrain.errors import (
    AlreadyExists,
    NotFound,
    PreconditionFailed,
    TransientError,
    ValidationError,
    classify_os_error,
)

__all__ = ["NO_OBJECT", "GCSStorage", "LocalStorage", "Storage", "check_key", "open_storage"]

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
        raise ValidationError(
            f"storage key {key!r} must be a relative path inside the storage root"
        )
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

    def open_read(self, key: str) -> BinaryIO:
        """A seekable reader of the object, for reading a part of it (a Parquet footer, some
        columns) without holding all of it. Raises NotFound."""
        return io.BytesIO(self.read_bytes(key))

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


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _os_errors(method: _Method) -> _Method:
    """A LocalStorage method whose OSErrors surface as ours: exit 2 or 75, with a fix.

    The errors a method handles itself (a missing file, an existing name) pass unchanged.
    """

    @functools.wraps(method)
    def wrapper(self: LocalStorage, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError):
            raise
        except OSError as err:
            where = str(err.filename) if err.filename else f"the store {self.root}"
            raise classify_os_error(err, where) from err

    return cast(_Method, wrapper)


class LocalStorage(Storage):
    """A directory on the local filesystem.

    Each object `a/b` has two hidden neighbours: `a/.b.generation` (its generation counter) and
    `a/.b.lock` (an flock file that serialises writers across threads and processes). Keys
    with a segment starting with '.' are refused, so no key can reach them.
    """

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

    @_os_errors
    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no object at {self.uri(key)}") from None
        except IsADirectoryError:
            raise NotFound(f"{self.uri(key)} is a directory, not an object") from None

    def open_read(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"no object at {self.uri(key)}") from None

    def _stored_generation(self, key: str) -> int:
        try:
            return int(self._gen_path(key).read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return NO_OBJECT

    @_os_errors
    def generation(self, key: str) -> int:
        if not self._path(key).is_file():
            return NO_OBJECT
        # A file written by something other than this class has no counter: first generation.
        return self._stored_generation(key) or 1

    def _next_generation(self, key: str) -> int:
        # The counter survives a deleted object, so a recreated key never reuses a generation
        # (as on GCS): a caller holding a generation from before cannot win a CAS after.
        return max(self.generation(key), self._stored_generation(key)) + 1

    def _stage(self, path: Path, data: bytes) -> Path:
        """Write `data` durably to a temporary file beside `path` and return its name."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            # mkstemp creates 0600 files; give objects the mode a plain open() would.
            os.fchmod(fd, 0o666 & ~_umask())
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

    def _commit(self, key: str, tmp: Path, new_gen: int, *, exclusive: bool) -> None:
        """Move a staged file into place, then record its generation.

        The object is replaced before its counter: an unlocked reader (`read_versioned`) that
        sees the old counter with the new bytes then loses its CAS, which is the safe outcome.
        """
        path = self._path(key)
        try:
            if exclusive:
                os.link(tmp, path)  # atomic; fails if the name exists
            else:
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        gen_tmp = self._stage(self._gen_path(key), str(new_gen).encode())
        os.replace(gen_tmp, self._gen_path(key))
        _fsync_dir(path.parent)

    @_os_errors
    def write_bytes(self, key: str, data: bytes) -> None:
        with self._locked(key):
            tmp = self._stage(self._path(key), data)
            self._commit(key, tmp, self._next_generation(key), exclusive=False)

    @_os_errors
    def create(self, key: str, data: bytes) -> None:
        with self._locked(key):
            new_gen = self._next_generation(key)
            tmp = self._stage(self._path(key), data)
            try:
                self._commit(key, tmp, new_gen, exclusive=True)
            except FileExistsError:
                raise AlreadyExists(f"{self.uri(key)} already exists (create-only)") from None

    @_os_errors
    def compare_and_swap(self, key: str, data: bytes, expected_generation: int) -> int:
        _check_generation(expected_generation)
        with self._locked(key):
            current = self.generation(key)
            if current != expected_generation:
                raise PreconditionFailed(
                    f"{self.uri(key)} changed "
                    f"(generation {current}, expected {expected_generation})"
                )
            new_gen = self._next_generation(key)
            tmp = self._stage(self._path(key), data)
            self._commit(key, tmp, new_gen, exclusive=False)
            return new_gen

    @_os_errors
    def list(self, prefix: str) -> list[str]:
        key = "" if prefix in ("", ".") else check_key(prefix)
        base = self._root / key if key else self._root
        if base.is_file():
            return [key]
        if not base.is_dir():
            return []
        out = []
        for p in base.rglob("*"):
            rel = p.relative_to(self._root).as_posix()
            if _visible(rel) and p.is_file():
                out.append(rel)
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
        prefix = prefix.strip("/")
        if prefix:
            prefix = check_key(prefix)
        # One client per process for every store (see `retrain._gcs`): building one looks
        # for credentials each time.
        self._client = client if client is not None else shared_client(root)
        self._bucket = self._client.bucket(bucket)
        self._prefix = prefix
        self.root = f"gs://{bucket}" + (f"/{self._prefix}" if self._prefix else "")

    def _name(self, key: str) -> str:
        k = check_key(key)
        return f"{self._prefix}/{k}" if self._prefix else k

    def uri(self, key: str) -> str:
        return f"gs://{self._bucket.name}/{self._name(key)}"

    @contextlib.contextmanager
    def _errors(self, where: str) -> Iterator[None]:
        """Map client exceptions to ours; `where` is the URI named in the message."""
        import requests
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc

        try:
            yield
        except gexc.NotFound:
            raise NotFound(f"no object at {where}") from None
        except gexc.PreconditionFailed:
            raise PreconditionFailed(f"{where} changed before our write") from None
        except (
            gexc.RetryError,  # the client's own retries ran out of time (120 s by default)
            gexc.ServiceUnavailable,
            gexc.TooManyRequests,
            gexc.InternalServerError,
            gexc.BadGateway,
            gexc.GatewayTimeout,
            auth_exc.TransportError,
            requests.ConnectionError,
            requests.Timeout,
            ConnectionError,
        ) as err:
            raise TransientError(f"GCS error on {where}: {err}") from err

    def read_bytes(self, key: str) -> bytes:
        with self._errors(self.uri(key)):
            return bytes(self._bucket.blob(self._name(key)).download_as_bytes())

    def open_read(self, key: str) -> BinaryIO:
        """A seekable reader of one object that downloads only the ranges read (Parquet
        footers and column chunks) rather than the whole object."""
        with self._errors(self.uri(key)):
            blob = self._bucket.get_blob(self._name(key))
            if blob is None:
                raise NotFound(f"no object at {self.uri(key)}")
            reader: BinaryIO = blob.open("rb")
        return reader

    def generation(self, key: str) -> int:
        with self._errors(self.uri(key)):
            blob = self._bucket.get_blob(self._name(key))
        return int(blob.generation) if blob is not None else NO_OBJECT

    def write_bytes(self, key: str, data: bytes) -> None:
        # A GCS upload (multipart or resumable) is atomic: the object appears whole or not at all.
        with self._errors(self.uri(key)):
            self._bucket.blob(self._name(key)).upload_from_string(data)

    def create(self, key: str, data: bytes) -> None:
        try:
            with self._errors(self.uri(key)):
                self._bucket.blob(self._name(key)).upload_from_string(data, if_generation_match=0)
        except PreconditionFailed:
            raise AlreadyExists(f"{self.uri(key)} already exists (create-only)") from None

    def compare_and_swap(self, key: str, data: bytes, expected_generation: int) -> int:
        _check_generation(expected_generation)
        blob = self._bucket.blob(self._name(key))
        with self._errors(self.uri(key)):
            blob.upload_from_string(data, if_generation_match=expected_generation)
        return int(blob.generation)

    def list(self, prefix: str) -> list[str]:
        return [key for key, _ in self.list_generations(prefix)]

    def list_generations(self, prefix: str) -> builtins.list[tuple[str, int]]:
        """`list`, each key with the generation the listing saw (no request per object)."""
        key = "" if prefix in ("", ".") else check_key(prefix)
        full = self._name(key) if key else self._prefix
        strip = f"{self._prefix}/" if self._prefix else ""
        where = self.uri(key) if key else self.root
        # List `full/` rather than `full`: a bare prefix 'a' would also match 'ab/...'.
        with self._errors(where):
            listed = [
                (b.name, int(b.generation))
                for b in self._client.list_blobs(self._bucket, prefix=f"{full}/" if full else None)
            ]
        keys = sorted((rel, g) for n, g in listed if _visible(rel := n[len(strip) :]))
        if not keys and key and (generation := self.generation(key)) != NO_OBJECT:
            return [(key, generation)]  # the prefix names an object itself, as a file does
        return keys


def _visible(key: str) -> bool:
    """Whether a listed name is a key this module could have written (no folder markers,
    no empty or hidden segments)."""
    return all(seg and not seg.startswith(".") for seg in key.split("/"))


def _check_generation(expected_generation: int) -> None:
    if (
        isinstance(expected_generation, bool)
        or not isinstance(expected_generation, int)
        or expected_generation < 0
    ):
        raise ValidationError(
            f"expected_generation must be an integer >= 0, got {expected_generation!r}"
        )


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    # os.umask can only be read by setting it, which races with other threads creating
    # files; Linux reports it in /proc instead.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _fsync_dir(path: Path) -> None:
    """Persist a directory's entries (a rename is durable only once its directory is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_storage(root: str, client: Any | None = None) -> Storage:
    """The store for a root URI: `gs://bucket/prefix` or a local path (or file://path)."""
    if root.startswith("gs://"):
        return GCSStorage(root, client=client)
    if root.startswith("file://"):
        return LocalStorage(root[len("file://") :])
    if "://" in root:
        raise ValidationError(f"unsupported storage URI scheme: {root} (use a path or gs://)")
    return LocalStorage(root)
