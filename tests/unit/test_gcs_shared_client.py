"""The shared google-cloud-storage client (`retrain._gcs`): kept only while what it was built
from holds: the quota project it bills, and the content of the key file it authenticated with."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from retrain.storage import GCSStorage, open_storage


class _RecordingClient:
    """Stands in for `google.cloud.storage.Client`: records what the environment gave it."""

    made: ClassVar[list[_RecordingClient]] = []

    def __init__(self) -> None:
        self.quota_project = os.environ.get("GOOGLE_CLOUD_QUOTA_PROJECT")
        key = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        self.key = Path(key).read_text() if key else None
        _RecordingClient.made.append(self)

    def bucket(self, name: str) -> Any:
        return type("Bucket", (), {"name": name})()


@pytest.fixture
def recording_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[_RecordingClient]]:
    from google.cloud import storage

    monkeypatch.setattr(storage, "Client", _RecordingClient)
    gcs = sys.modules.get("retrain._gcs")
    if gcs is not None:
        monkeypatch.setattr(gcs, "_clients", {})  # none kept from another test
    for name in ("GOOGLE_CLOUD_QUOTA_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    _RecordingClient.made = []
    yield _RecordingClient.made


def _client(root: str) -> Any:
    store = open_storage(root)
    assert isinstance(store, GCSStorage)
    return store._client


def test_a_store_opened_under_another_quota_project_gets_its_own_client(
    recording_clients: list[_RecordingClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # google.auth reads GOOGLE_CLOUD_QUOTA_PROJECT when the client is built: a store opened
    # under another quota project was served by the client that bills the first.
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "billing-a")
    first = _client("gs://a/m1")
    assert _client("gs://a/m2") is first  # the same settings share one client
    monkeypatch.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "billing-b")
    assert _client("gs://a/m2").quota_project == "billing-b"
    assert first.quota_project == "billing-a"


def test_a_key_file_rotated_in_place_is_read_again(
    recording_clients: list[_RecordingClient], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A Kubernetes Secret volume updates a key file in place (same path, new content): the
    # client built from the old key was kept for the life of the process.
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"private_key_id": "old"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    old = _client("gs://a/m1")
    assert _client("gs://a/m2") is old  # the same key: one client
    assert len(recording_clients) == 1
    key.write_text(json.dumps({"private_key_id": "new"}))  # the Secret's new version
    later = _client("gs://a/m1")
    assert json.loads(later.key)["private_key_id"] == "new"
    assert _client("gs://a/m2") is later
    assert len(recording_clients) == 2
