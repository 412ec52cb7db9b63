"""GCSStorage details against fake-gcs-server with the real google-cloud-storage client.

The shared behavioural suite (tests/unit/test_storage.py, test_registry.py) already runs on
GCS through the `store_factory` fixture; this file covers what only GCS has: object names
written by other tools, bucket prefixes, real generations, and error mapping.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from retrain.errors import (
    AlreadyExists,
    NotFound,
    PreconditionFailed,
    ValidationError,
)
from retrain.storage import GCSStorage

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"g-{uuid.uuid4().hex[:12]}"


def _store(emulator: Any, root: str) -> GCSStorage:
    return GCSStorage(root, client=emulator.client())


def _put(emulator: Any, name: str, data: bytes = b"x") -> Any:
    """Write an object behind the store's back, as another tool would."""
    blob = emulator.client().bucket(emulator.bucket).blob(name)
    blob.upload_from_string(data)
    return blob


def test_list_stays_inside_the_root_prefix(gcs_emulator: Any, prefix: str) -> None:
    for name in [f"{prefix}/a/1", f"{prefix}/ab/2", f"{prefix}2/x", f"{prefix}-other/y"]:
        _put(gcs_emulator, name)
    store = _store(gcs_emulator, f"gs://{gcs_emulator.bucket}/{prefix}")
    assert store.list("") == ["a/1", "ab/2"]
    assert store.list("a") == ["a/1"]
    assert store.list("ab") == ["ab/2"]
    assert store.list("a/1") == ["a/1"]


def test_list_skips_names_the_store_cannot_address(gcs_emulator: Any, prefix: str) -> None:
    for name in [f"{prefix}/d/ok", f"{prefix}/d/.hidden", f"{prefix}/d/.git/config"]:
        _put(gcs_emulator, name)
    store = _store(gcs_emulator, f"gs://{gcs_emulator.bucket}/{prefix}")
    assert store.list("d") == ["d/ok"]


def test_generations_are_the_service_generations(gcs_emulator: Any, prefix: str) -> None:
    store = _store(gcs_emulator, f"gs://{gcs_emulator.bucket}/{prefix}")
    blob = _put(gcs_emulator, f"{prefix}/obj", b"v1")
    assert store.generation("obj") == blob.generation
    new = store.compare_and_swap("obj", b"v2", blob.generation)
    fresh = emulator_blob = (
        gcs_emulator.client().bucket(gcs_emulator.bucket).get_blob(f"{prefix}/obj")
    )
    assert new == fresh.generation == emulator_blob.generation
    assert new != blob.generation
    with pytest.raises(PreconditionFailed, match=f"gs://{gcs_emulator.bucket}/{prefix}/obj"):
        store.compare_and_swap("obj", b"v3", blob.generation)
    with pytest.raises(AlreadyExists):
        store.create("obj", b"v3")
    assert fresh.download_as_bytes() == b"v2"


def test_large_object_round_trip_is_create_only(gcs_emulator: Any, prefix: str) -> None:
    # Above 8 MiB the client switches from one multipart request to a resumable upload.
    store = _store(gcs_emulator, f"gs://{gcs_emulator.bucket}/{prefix}")
    data = bytes(range(256)) * (9 * 4096)
    store.create("big.bin", data)
    assert store.read_bytes("big.bin") == data
    with pytest.raises(AlreadyExists):
        store.create("big.bin", b"small")


def test_root_and_uri(gcs_emulator: Any, prefix: str) -> None:
    store = _store(gcs_emulator, f"gs://{gcs_emulator.bucket}/{prefix}/")
    assert store.root == f"gs://{gcs_emulator.bucket}/{prefix}"
    assert store.uri("a/b") == f"gs://{gcs_emulator.bucket}/{prefix}/a/b"
    whole = _store(gcs_emulator, f"gs://{gcs_emulator.bucket}")
    assert whole.uri("a") == f"gs://{gcs_emulator.bucket}/a"


@pytest.mark.parametrize("root", ["s3://b/x", "gs://", "gs:///x", "gs://b/../x"])
def test_bad_roots_are_refused(gcs_emulator: Any, root: str) -> None:
    with pytest.raises(ValidationError):
        _store(gcs_emulator, root)


def test_missing_bucket_is_not_found(gcs_emulator: Any) -> None:
    store = _store(gcs_emulator, f"gs://no-such-bucket-{uuid.uuid4().hex[:8]}")
    with pytest.raises(NotFound):
        store.read_bytes("x")


def test_emulator_does_not_leak_into_the_environment(gcs_emulator: Any) -> None:
    assert os.environ.get("STORAGE_EMULATOR_HOST") != gcs_emulator.url
