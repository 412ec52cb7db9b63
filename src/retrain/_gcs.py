"""One google-cloud-storage client per process and client settings, shared by every gs:// store.

Building a client looks for credentials (a key file, the gcloud defaults, the metadata server)
and opens its own connection pool, so a monitor pass that opens a store for each of fifty
models must not build fifty. One client serves every store of a process that has the same
settings: the environment variables that choose the client's project, endpoint (an emulator)
and credentials. The library's client is safe to share across threads; across a fork it is
not (its connections would be shared with the parent), so clients are kept per process id and
a forked child starts with none, and builds its own on first use.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from retrain.errors import ValidationError

__all__ = ["shared_client"]

#: The environment variables a default `google.cloud.storage.Client()` reads its project,
#: endpoint and credentials from: a client is shared only by stores opened with the same.
_SETTINGS = (
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "STORAGE_EMULATOR_HOST",
    "API_ENDPOINT_OVERRIDE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
    "GOOGLE_API_USE_CLIENT_CERTIFICATE",
)

_clients: dict[tuple[int, tuple[str | None, ...]], Any] = {}
_lock = threading.Lock()


def shared_client(root: str) -> Any:
    """This process's client for the current settings, built on first use.

    Raises:
        ValidationError: no credentials found (the message, naming `root`, says how to give
            them); nothing is kept, so the next store tries again.
    """
    key = (os.getpid(), tuple(os.environ.get(name) for name in _SETTINGS))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _new_client(root)
        return client


def _new_client(root: str) -> Any:
    """A google.cloud.storage client, or a ValidationError saying how to give it credentials."""
    from google.auth import exceptions as auth_exc
    from google.cloud import storage as gcs

    try:
        return gcs.Client()
    except auth_exc.DefaultCredentialsError:
        raise ValidationError(
            f"{root}: no Google Cloud credentials found; set GOOGLE_APPLICATION_CREDENTIALS to "
            "a service-account key file, run `gcloud auth application-default login`, or run "
            "with Workload Identity"
        ) from None


def _forget_after_fork() -> None:
    """In a forked child: no client of the parent's, and a lock no thread of the parent held."""
    global _lock
    _lock = threading.Lock()
    _clients.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_after_fork)
