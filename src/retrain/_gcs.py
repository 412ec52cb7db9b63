"""One google-cloud-storage client per process and client settings, shared by every gs:// store.

Building a client looks for credentials (a key file, the gcloud defaults, the metadata server)
and opens its own connection pool, so a monitor pass that opens a store for each of fifty
models must not build fifty. One client serves every store of a process that has the same
settings: the environment variables that choose the client's project, quota project, endpoint
(an emulator) and credentials, and the content of the key file GOOGLE_APPLICATION_CREDENTIALS
names (a Kubernetes Secret volume rotates a key in place: same path, new content; the next
store opened after that gets a client built from the new key, while stores opened before keep
theirs). The library's client is safe to share across threads; across a fork it is not (its
connections would be shared with the parent), so clients are kept per process id and a forked
child starts with none, and builds its own on first use.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

from retrain.errors import ValidationError

__all__ = ["shared_client"]

#: The environment variables a default `google.cloud.storage.Client()` reads its project,
#: quota project, endpoint and credentials from: a client is shared only by stores opened with
#: the same.
_SETTINGS = (
    "GOOGLE_CLOUD_PROJECT",
    "GCLOUD_PROJECT",
    "GOOGLE_CLOUD_QUOTA_PROJECT",
    "STORAGE_EMULATOR_HOST",
    "API_ENDPOINT_OVERRIDE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
    "GOOGLE_API_USE_CLIENT_CERTIFICATE",
)

#: Per process id and settings: the key file's digest the client was built with, and the client.
_clients: dict[tuple[int, tuple[str | None, ...]], tuple[str | None, Any]] = {}
_lock = threading.Lock()


def shared_client(root: str) -> Any:
    """This process's client for the current settings, built on first use.

    Raises:
        ValidationError: no credentials found (the message, naming `root`, says how to give
            them); nothing is kept, so the next store tries again.
    """
    key = (os.getpid(), tuple(os.environ.get(name) for name in _SETTINGS))
    digest = _key_file_digest(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
    with _lock:
        kept = _clients.get(key)
        if kept is not None and kept[0] == digest:
            return kept[1]
        client = _new_client(root)  # first use, or the key file changed: the old one is let go
        _clients[key] = (digest, client)
        return client


def _key_file_digest(path: str | None) -> str | None:
    """The SHA-256 of the key file's content (None: no file named, or none readable there)."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:  # the client's build says what is wrong with it
        return None


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
