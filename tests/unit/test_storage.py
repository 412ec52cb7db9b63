"""Storage semantics, run against every backend (`store_factory` covers local and GCS).

The GCS half needs the emulator and carries the `integration` marker; tests that only make
sense on a local directory (temp files, file modes, the generation counter) come last.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import retrain.storage as storage_module
from retrain.errors import (
    AlreadyExists,
    NotFound,
    PreconditionFailed,
    TransientError,
    ValidationError,
    exit_code_for,
)
from retrain.storage import NO_OBJECT, GCSStorage, LocalStorage, Storage, check_key, open_storage

N_WORKERS = 8
BARRIER_TIMEOUT = 60.0

BAD_KEYS = ["../x", "/etc/passwd", "a/../../b", "gs://x", "", "..", "a/..", "a/.hidden", "a\\b"]


# -- basic reads and writes -------------------------------------------------------------------


def test_missing_object(store: Storage) -> None:
    assert store.generation("nope/x.bin") == NO_OBJECT
    assert not store.exists("nope/x.bin")
    assert store.read_versioned("nope/x.bin") == (None, NO_OBJECT)
    with pytest.raises(NotFound, match=r"x\.bin"):
        store.read_bytes("nope/x.bin")


def test_write_replaces_and_bumps_generation(store: Storage) -> None:
    store.write_bytes("d/obj", b"one")
    first = store.generation("d/obj")
    store.write_text("d/obj", "two")
    second = store.generation("d/obj")
    assert store.read_text("d/obj") == "two"
    assert first > NO_OBJECT
    assert second > first
    assert store.read_versioned("d/obj") == (b"two", second)


def test_create_is_create_only(store: Storage) -> None:
    store.create("v/model.bin", b"first")
    generation = store.generation("v/model.bin")
    with pytest.raises(AlreadyExists, match=r"model\.bin"):
        store.create("v/model.bin", b"second")
    with pytest.raises(AlreadyExists):
        store.create("v/model.bin", b"first")  # even identical bytes: the caller decides
    assert store.read_bytes("v/model.bin") == b"first"
    assert store.generation("v/model.bin") == generation


def test_compare_and_swap(store: Storage) -> None:
    # Generation 0 means "must not exist".
    gen1 = store.compare_and_swap("alias.json", b"1", 0)
    assert gen1 == store.generation("alias.json")
    with pytest.raises(PreconditionFailed):
        store.compare_and_swap("alias.json", b"again", 0)

    gen2 = store.compare_and_swap("alias.json", b"2", gen1)
    assert gen2 == store.generation("alias.json")
    assert gen2 > gen1
    with pytest.raises(PreconditionFailed):
        store.compare_and_swap("alias.json", b"stale", gen1)
    assert store.read_bytes("alias.json") == b"2"


def test_compare_and_swap_refuses_bad_generation(store: Storage) -> None:
    with pytest.raises(ValidationError, match="expected_generation"):
        store.compare_and_swap("k", b"x", -1)
    assert not store.exists("k")


def test_list_matches_whole_segments(store: Storage) -> None:
    for key in ["a/1", "a/b/2", "ab/3", "a.txt", "b", "abc"]:
        store.write_bytes(key, key.encode())
    assert store.list("a") == ["a/1", "a/b/2"]
    assert store.list("a/") == ["a/1", "a/b/2"]
    assert store.list("a/b") == ["a/b/2"]
    assert store.list("") == ["a.txt", "a/1", "a/b/2", "ab/3", "abc", "b"]
    assert store.list("a/1") == ["a/1"]  # an object named by the prefix itself
    assert store.list("missing") == []
    assert store.list("a/b/2/deeper") == []


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_escaping_the_root_are_refused(store: Storage, tmp_path: Path, key: str) -> None:
    calls: list[Any] = [
        lambda: store.read_bytes(key),
        lambda: store.write_bytes(key, b"x"),
        lambda: store.create(key, b"x"),
        lambda: store.compare_and_swap(key, b"x", 0),
        lambda: store.generation(key),
        lambda: store.uri(key),
    ]
    if key:  # "" lists the whole store, as "." does
        calls.append(lambda: store.list(key))
    for call in calls:
        with pytest.raises(ValidationError, match="storage key"):
            call()
    assert store.list("") == []
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "b").exists()


def test_check_key_normalises() -> None:
    assert check_key("a//b/./c") == "a/b/c"
    assert check_key("a/b/../c") == "a/c"


def test_uri_names_the_backend(store_factory: Any) -> None:
    store = store_factory()
    uri = store.uri("models/m/versions/1")
    assert uri == f"{store.root}/models/m/versions/1"
    if store_factory.backend == "gcs":
        assert uri.startswith("gs://")
    else:
        assert Path(uri).is_absolute()


# -- races ------------------------------------------------------------------------------------


def _cas_increment(store: Storage, key: str) -> int:
    """Read-CAS-retry until our increment lands; returns the number of lost races."""
    lost = 0
    while True:
        data, gen = store.read_versioned(key)
        value = json.loads(data) if data is not None else 0
        try:
            store.compare_and_swap(key, json.dumps(value + 1).encode(), gen)
            return lost
        except PreconditionFailed:
            lost += 1


def _race_rounds(store: Storage, key: str, rounds: int, barrier: Any) -> list[bool]:
    """Every worker reads the same generation, then all CAS at once; which rounds we won."""
    won = []
    for _ in range(rounds):
        barrier.wait(BARRIER_TIMEOUT)  # the previous round is over
        data, gen = store.read_versioned(key)
        value = json.loads(data) if data is not None else 0
        barrier.wait(BARRIER_TIMEOUT)  # everyone holds the same generation
        try:
            store.compare_and_swap(key, json.dumps(value + 1).encode(), gen)
            won.append(True)
        except PreconditionFailed:
            won.append(False)
    return won


def test_threads_race_create(store_factory: Any) -> None:
    barrier = threading.Barrier(N_WORKERS)
    outcome: dict[int, Any] = {}

    def work(i: int) -> None:
        store = store_factory()
        barrier.wait(BARRIER_TIMEOUT)
        try:
            store.create("once", str(i).encode())
            outcome[i] = "created"
        except Exception as err:  # examined below
            outcome[i] = err

    threads = [threading.Thread(target=work, args=(i,)) for i in range(N_WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BARRIER_TIMEOUT)
    winners = [i for i, r in outcome.items() if r == "created"]
    assert len(winners) == 1, outcome
    assert all(isinstance(r, AlreadyExists) for i, r in outcome.items() if i not in winners)
    assert store_factory().read_bytes("once") == str(winners[0]).encode()


def test_threads_race_compare_and_swap(store_factory: Any) -> None:
    rounds, increments = 3, 4
    barrier = threading.Barrier(N_WORKERS)
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        store = store_factory()  # own handle (and own GCS client) per thread
        try:
            won = _race_rounds(store, "race/rounds", rounds, barrier)
            lost = sum(_cas_increment(store, "race/counter") for _ in range(increments))
            results[i] = (won, lost)
        except BaseException as err:  # reported below; a thread cannot fail the test itself
            barrier.abort()
            results[i] = err

    threads = [threading.Thread(target=work, args=(i,)) for i in range(N_WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BARRIER_TIMEOUT)
    _check_race(store_factory(), results, rounds, increments)


def test_processes_race_compare_and_swap(store_factory: Any) -> None:
    rounds, increments = 2, 3
    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded test process
    barrier = ctx.Barrier(N_WORKERS)
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_race_process,
            args=(i, store_factory.spec, rounds, increments, barrier, queue),
        )
        for i in range(N_WORKERS)
    ]
    for p in procs:
        p.start()
    try:
        results = dict(queue.get(timeout=BARRIER_TIMEOUT) for _ in procs)
    finally:
        for p in procs:
            p.join(BARRIER_TIMEOUT)
    assert [p.exitcode for p in procs] == [0] * N_WORKERS
    _check_race(store_factory(), results, rounds, increments)


def _race_process(
    i: int,
    spec: tuple[str, str, str | None],
    rounds: int,
    increments: int,
    barrier: Any,
    queue: Any,
) -> None:
    try:
        store = _open_spec(spec)
        won = _race_rounds(store, "race/rounds", rounds, barrier)
        lost = sum(_cas_increment(store, "race/counter") for _ in range(increments))
        queue.put((i, (won, lost)))
    except BaseException as err:
        barrier.abort()
        queue.put((i, f"{type(err).__name__}: {err}"))


def _open_spec(spec: tuple[str, str, str | None]) -> Storage:
    backend, root, endpoint = spec
    if backend == "local":
        return open_storage(root)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )
    return open_storage(root, client=client)


def _check_race(store: Storage, results: dict[int, Any], rounds: int, increments: int) -> None:
    failures = {i: r for i, r in results.items() if not isinstance(r, tuple)}
    assert not failures, failures
    assert len(results) == N_WORKERS
    for r in range(rounds):
        winners = [i for i, (won, _) in results.items() if won[r]]
        assert len(winners) == 1, f"round {r}: winners {winners}"
    assert json.loads(store.read_bytes("race/rounds")) == rounds
    assert json.loads(store.read_bytes("race/counter")) == N_WORKERS * increments


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("retry", TransientError),
        ("unavailable", TransientError),
        ("connection", TransientError),
        ("forbidden", None),
    ],
)
def test_gcs_errors_map_to_exit_codes(
    monkeypatch: pytest.MonkeyPatch, error: str, expected: type[Exception] | None
) -> None:
    # The client retries failed requests for up to 120 s before raising RetryError, too long
    # to wait for here; the client's upload is replaced so the mapping can be checked alone.
    import requests
    from google.api_core import exceptions as gexc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    errors = {
        "retry": gexc.RetryError("Timeout of 120.0s exceeded", cause=ConnectionError()),
        "unavailable": gexc.ServiceUnavailable("try later"),
        "connection": requests.ConnectionError("refused"),
        "forbidden": gexc.Forbidden("no access"),
    }

    def failing_upload(self: Any, *args: Any, **kwargs: Any) -> None:
        raise errors[error]

    monkeypatch.setattr(storage.Blob, "upload_from_string", failing_upload)
    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": "http://127.0.0.1:9"},  # never contacted
    )
    store = GCSStorage("gs://bucket/prefix", client=client)
    with pytest.raises(expected or gexc.Forbidden) as info:
        store.write_bytes("k", b"v")
    if expected is TransientError:
        assert "gs://bucket/prefix/k" in str(info.value)
        assert exit_code_for(info.value) == 75


class _CountedClient:
    """Stands in for `google.cloud.storage.Client`: counts its constructions, talks to nobody."""

    made: ClassVar[list[_CountedClient]] = []

    def __init__(self) -> None:
        _CountedClient.made.append(self)

    def bucket(self, name: str) -> Any:
        return type("Bucket", (), {"name": name})()


@pytest.fixture
def counted_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[_CountedClient]]:
    from google.cloud import storage

    monkeypatch.setattr(storage, "Client", _CountedClient)
    kept = sys.modules.get("retrain._gcs")
    if kept is not None:
        monkeypatch.setattr(kept, "_clients", {})  # none kept from another test
    _CountedClient.made = []
    yield _CountedClient.made


def test_gs_stores_of_one_process_share_one_client(
    counted_clients: list[_CountedClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pass over fifty models opened fifty stores, each building a client (and looking
    # for credentials) of its own.
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    stores = [open_storage(root) for root in ("gs://a/m1", "gs://a/m2", "gs://b", "gs://a/m1")]
    assert len(counted_clients) == 1
    assert {id(s._client) for s in stores if isinstance(s, GCSStorage)} == {id(counted_clients[0])}
    # Other settings (here an emulator's endpoint) get a client of their own, kept as well.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    emulated = [open_storage("gs://a/m1"), open_storage("gs://a/m2")]
    assert len(counted_clients) == 2
    assert all(s._client is counted_clients[1] for s in emulated if isinstance(s, GCSStorage))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")
def test_a_forked_child_builds_its_own_gs_client(counted_clients: list[_CountedClient]) -> None:
    parents = open_storage("gs://a/m1")
    assert isinstance(parents, GCSStorage)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running the parent's cleanup
        try:
            stores = [open_storage("gs://a/m1"), open_storage("gs://a/m2")]
            clients = {id(s._client) for s in stores if isinstance(s, GCSStorage)}
            report = {
                "reused_parents": id(parents._client) in clients,
                "clients": len(clients),
                "built_here": len(counted_clients) - 1,
            }
            os.write(write, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        report = json.loads(f.read())
    os.waitpid(pid, 0)
    assert report == {"reused_parents": False, "clients": 1, "built_here": 1}
    assert open_storage("gs://a/m2")._client is parents._client  # type: ignore[attr-defined]


# -- local directory only ---------------------------------------------------------------------


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*.tmp"))


def test_local_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStorage(tmp_path)
    store.write_bytes("m/obj", b"old")
    seen: list[bytes] = []
    real_replace = os.replace

    def observing_replace(src: Any, dst: Any) -> None:
        # Just before the swap the new bytes are staged, yet readers still get the old ones.
        if Path(dst).name == "obj":
            assert Path(src).read_bytes() == b"new"
            seen.append(LocalStorage(tmp_path).read_bytes("m/obj"))
        real_replace(src, dst)

    monkeypatch.setattr(storage_module.os, "replace", observing_replace)
    store.write_bytes("m/obj", b"new")
    assert seen == [b"old"]
    assert store.read_bytes("m/obj") == b"new"
    assert _leftovers(tmp_path) == []


def test_local_failed_write_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStorage(tmp_path)
    store.write_bytes("m/obj", b"old")
    generation = store.generation("m/obj")

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(storage_module.os, "replace", failing_replace)
    # An OSError of unknown kind surfaces as transient (exit 75), its reason kept.
    with pytest.raises(TransientError, match="disk full"):
        store.write_bytes("m/obj", b"new")
    with pytest.raises(TransientError, match="disk full"):
        store.compare_and_swap("m/obj", b"new", generation)
    monkeypatch.undo()
    assert store.read_bytes("m/obj") == b"old"
    assert store.generation("m/obj") == generation
    assert _leftovers(tmp_path) == []


def test_local_no_temp_files_after_create_conflict(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.create("a/b", b"1")
    with pytest.raises(AlreadyExists):
        store.create("a/b", b"2")
    assert _leftovers(tmp_path) == []
    assert store.list("") == ["a/b"]  # the generation and lock files stay hidden


def test_local_objects_get_the_usual_file_mode(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.write_bytes("obj", b"x")
    (tmp_path / "plain").write_bytes(b"x")
    mode = stat.S_IMODE((tmp_path / "obj").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_local_generation_is_never_reused(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.create("k", b"1")
    old = store.generation("k")
    (tmp_path / "k").unlink()  # deleted behind the store's back
    assert store.generation("k") == NO_OBJECT
    store.create("k", b"2")
    assert store.generation("k") > old
    with pytest.raises(PreconditionFailed):
        store.compare_and_swap("k", b"3", old)


def test_local_foreign_file_is_first_generation(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"made elsewhere")
    store = LocalStorage(tmp_path)
    assert store.generation("d/f") == 1
    assert store.compare_and_swap("d/f", b"ours", 1) == 2


def test_open_storage_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert open_storage(f"file://{tmp_path}").root == str(tmp_path.resolve())
    with pytest.raises(ValidationError, match="s3://"):
        open_storage("s3://bucket/x")
