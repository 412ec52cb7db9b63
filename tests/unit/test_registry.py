"""The registry on every storage backend (`store_factory`: local directory and GCS emulator)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from retrain.errors import AlreadyExists, NotFound, PreconditionFailed, ValidationError
from retrain.registry import EVENT_KINDS, AliasState, Registry
from retrain.storage import Storage

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
FILES = {"model.skops": b"\x00model-bytes", "model.json": b'{"version": "v1"}'}


class TickingClock:
    """Advances one second per reading, so every write gets a distinct, known time."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def registry(store: Storage) -> Registry:
    return Registry(store, "churn", clock=TickingClock())


def _keys(store: Storage, prefix: str = "models/churn") -> list[str]:
    return store.list(prefix)


# -- versions ---------------------------------------------------------------------------------


def test_register_and_read_back(registry: Registry, store: Storage) -> None:
    registry.register("v1", FILES)
    assert registry.versions() == ["v1"]
    assert registry.read_file("v1", "model.skops") == FILES["model.skops"]
    assert registry.version_uri("v1") == f"{store.root}/models/churn/versions/v1"
    assert registry.file_uri("v1", "model.json") == (
        f"{store.root}/models/churn/versions/v1/model.json"
    )
    manifest = json.loads(store.read_bytes("models/churn/versions/v1/_COMPLETE"))
    assert manifest["registered_at"] == "2024-05-01T12:00:01.000000+00:00"
    assert manifest["files"]["model.skops"]["bytes"] == len(FILES["model.skops"])
    assert sorted(manifest["files"]) == ["model.json", "model.skops"]


def test_versions_sorted_by_registration_time(registry: Registry) -> None:
    for version in ["b-2", "a-1", "c.3"]:
        registry.register(version, {"m.bin": version.encode()})
    assert registry.versions() == ["b-2", "a-1", "c.3"]


def test_incomplete_version_is_invisible_until_completed(
    registry: Registry, store: Storage
) -> None:
    registry.register("v1", FILES)
    # A writer crashed after its first file, before _COMPLETE.
    store.create("models/churn/versions/v2/model.json", FILES["model.json"])
    assert registry.versions() == ["v1"]
    with pytest.raises(NotFound, match="'v2'"):
        registry.read_file("v2", "model.json")
    with pytest.raises(ValidationError, match="not a complete registered version"):
        registry.set_alias("champion", "v2", 0)

    registry.register("v2", FILES)  # the re-run completes it
    assert registry.versions() == ["v1", "v2"]
    assert registry.read_file("v2", "model.skops") == FILES["model.skops"]


def test_partial_version_with_other_files_is_refused(registry: Registry, store: Storage) -> None:
    store.create("models/churn/versions/v1/old.bin", b"from another attempt")
    with pytest.raises(AlreadyExists, match=r"old\.bin"):
        registry.register("v1", FILES)
    assert _keys(store) == ["models/churn/versions/v1/old.bin"]
    assert registry.versions() == []


def test_re_register_identical_is_a_no_op(registry: Registry, store: Storage) -> None:
    registry.register("v1", FILES)
    marker = "models/churn/versions/v1/_COMPLETE"
    before = (store.read_bytes(marker), store.generation(marker))
    registry.register("v1", dict(FILES))
    assert (store.read_bytes(marker), store.generation(marker)) == before
    assert registry.versions() == ["v1"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({**FILES, "model.skops": b"retrained"}, "model.skops: content differs"),
        ({**FILES, "extra.txt": b"x"}, "extra.txt: given now, not registered"),
        ({"model.json": FILES["model.json"]}, "model.skops: registered, not given now"),
    ],
)
def test_conflicting_re_register_is_refused(
    registry: Registry, store: Storage, files: dict[str, bytes], message: str
) -> None:
    registry.register("v1", FILES)
    before = _keys(store)
    with pytest.raises(AlreadyExists, match=message):
        registry.register("v1", files)
    assert _keys(store) == before
    assert registry.read_file("v1", "model.skops") == FILES["model.skops"]


def test_conflicting_partial_file_is_refused(registry: Registry, store: Storage) -> None:
    store.create("models/churn/versions/v1/model.json", b"something else")
    with pytest.raises(AlreadyExists, match="different content"):
        registry.register("v1", FILES)
    assert not store.exists("models/churn/versions/v1/_COMPLETE")


@pytest.mark.parametrize("version", ["a/b", "../x", "", ".hidden", "v 1", "_COMPLETE", "x" * 129])
def test_invalid_version_names(registry: Registry, store: Storage, version: str) -> None:
    with pytest.raises(ValidationError, match="invalid version"):
        registry.register(version, FILES)
    assert _keys(store, "") == []


def test_invalid_files_reported_together(registry: Registry, store: Storage) -> None:
    with pytest.raises(ValidationError) as info:
        registry.register("v1", {"_COMPLETE": b"x", "../up": b"y", "ok": "text"})  # type: ignore[dict-item]
    assert len(info.value.problems) == 3
    assert "'_COMPLETE'" in str(info.value)
    assert "'../up'" in str(info.value)
    assert "must be bytes" in str(info.value)
    with pytest.raises(ValidationError, match="no files"):
        registry.register("v1", {})
    assert _keys(store, "") == []


def test_nested_file_names(registry: Registry) -> None:
    registry.register("v1", {"model/weights.bin": b"w", "card.json": b"{}"})
    assert registry.read_file("v1", "model/weights.bin") == b"w"


def test_invalid_model_name(store: Storage) -> None:
    with pytest.raises(ValidationError, match="model name"):
        Registry(store, "a/b")


# -- aliases ----------------------------------------------------------------------------------


def test_alias_lifecycle(registry: Registry, store: Storage) -> None:
    assert registry.get_alias("champion") == AliasState(None, 0, None, None)
    registry.register("v1", FILES)
    registry.register("v2", FILES)

    first = registry.set_alias("champion", "v1", 0)
    assert (first.version, first.previous) == ("v1", None)
    assert first.generation == store.generation("models/churn/aliases/champion.json")
    assert registry.get_alias("champion") == first

    second = registry.set_alias("champion", "v2", first.generation)
    assert (second.version, second.previous) == ("v2", "v1")
    assert second.updated_at == "2024-05-01T12:00:04.000000+00:00"

    # Re-pointing at the same version keeps the rollback target.
    same = registry.set_alias("champion", "v2", second.generation)
    assert (same.version, same.previous) == ("v2", "v1")

    cleared = registry.set_alias("champion", None, same.generation)
    assert (cleared.version, cleared.previous) == (None, "v2")
    assert registry.get_alias("champion") == cleared
    assert json.loads(store.read_bytes("models/churn/aliases/champion.json")) == {
        "version": None,
        "previous": "v2",
        "updated_at": cleared.updated_at,
    }


def test_stale_generation_is_refused(registry: Registry) -> None:
    registry.register("v1", FILES)
    registry.register("v2", FILES)
    state = registry.set_alias("canary", "v1", 0)
    with pytest.raises(PreconditionFailed, match="canary"):
        registry.set_alias("canary", "v2", 0)
    assert registry.get_alias("canary") == state


def test_alias_to_unknown_version_writes_nothing(registry: Registry, store: Storage) -> None:
    registry.register("v1", FILES)
    state = registry.set_alias("champion", "v1", 0)
    before = _keys(store)
    with pytest.raises(ValidationError, match=r"'v9'.*registered: v1"):
        registry.set_alias("champion", "v9", state.generation)
    with pytest.raises(ValidationError, match="invalid version"):
        registry.set_alias("champion", "../v1", state.generation)
    with pytest.raises(ValidationError, match="not a complete"):
        registry.set_alias("canary", "v9", 0)
    assert _keys(store) == before
    assert registry.get_alias("champion") == state


def test_two_registries_race_for_an_alias(store_factory: Any) -> None:
    setup = Registry(store_factory(), "churn", clock=TickingClock())
    for version in ["v1", "v2", "v3"]:
        setup.register(version, FILES)
    start = setup.set_alias("champion", "v1", 0)

    # Two writers on their own handles both read generation `start` and both try to move.
    writers = [Registry(store_factory(), "churn", clock=TickingClock()) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcome: dict[str, Any] = {}

    def move(registry: Registry, version: str) -> None:
        seen = registry.get_alias("champion")
        barrier.wait(30)
        try:
            outcome[version] = registry.set_alias("champion", version, seen.generation)
        except Exception as err:  # examined below
            outcome[version] = err

    threads = [
        threading.Thread(target=move, args=(writers[0], "v2")),
        threading.Thread(target=move, args=(writers[1], "v3")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    won = {v: r for v, r in outcome.items() if isinstance(r, AliasState)}
    lost = {v: r for v, r in outcome.items() if not isinstance(r, AliasState)}
    assert len(won) == 1, outcome
    assert len(lost) == 1, outcome
    assert isinstance(next(iter(lost.values())), PreconditionFailed)
    winner = next(iter(won.values()))
    final = setup.get_alias("champion")
    assert final == winner
    assert (final.previous, final.generation != start.generation) == ("v1", True)


def test_two_registries_sequential_race(store_factory: Any) -> None:
    a = Registry(store_factory(), "churn", clock=TickingClock())
    b = Registry(store_factory(), "churn", clock=TickingClock())
    a.register("v1", FILES)
    a.register("v2", FILES)
    seen_a, seen_b = a.get_alias("champion"), b.get_alias("champion")
    a.set_alias("champion", "v1", seen_a.generation)
    with pytest.raises(PreconditionFailed):
        b.set_alias("champion", "v2", seen_b.generation)
    assert b.get_alias("champion").version == "v1"


# -- events -----------------------------------------------------------------------------------


def test_events_in_order(registry: Registry) -> None:
    kinds = ["trained", "evaluated", "blessed", "registered", "alias_moved", "deployed"]
    written = [registry.append_event(kind, run_id=f"run-{i}") for i, kind in enumerate(kinds)]
    events = registry.events()
    assert [e["kind"] for e in events] == kinds
    assert events == written
    assert events[0]["time"] == "2024-05-01T12:00:01.000000+00:00"
    assert events[0]["model"] == "churn"
    assert events[0]["run_id"] == "run-0"
    assert [e["kind"] for e in registry.events(limit=2)] == ["alias_moved", "deployed"]
    assert registry.events(limit=0) == []
    assert len(registry.events(limit=100)) == len(kinds)


def test_events_keep_call_order_with_a_frozen_clock(store: Storage) -> None:
    registry = Registry(store, "churn", clock=lambda: T0)
    for kind in EVENT_KINDS:
        registry.append_event(kind)
    events = registry.events()
    assert [e["kind"] for e in events] == list(EVENT_KINDS)
    assert len({e["time"] for e in events}) == len(EVENT_KINDS)


def test_events_from_two_writers_interleave_by_time(store_factory: Any) -> None:
    clock_a, clock_b = TickingClock(T0), TickingClock(T0 + timedelta(milliseconds=500))
    a = Registry(store_factory(), "churn", clock=clock_a)
    b = Registry(store_factory(), "churn", clock=clock_b)
    a.append_event("trained", who="a")  # 12:00:01.0
    b.append_event("evaluated", who="b")  # 12:00:01.5
    a.append_event("blessed", who="a")  # 12:00:02.0
    assert [e["who"] for e in a.events()] == ["a", "b", "a"]


def test_bad_events_are_refused(registry: Registry, store: Storage) -> None:
    with pytest.raises(ValidationError, match="unknown event kind 'exploded'"):
        registry.append_event("exploded")
    with pytest.raises(ValidationError, match="'time' is set by the registry"):
        registry.append_event("trained", time="yesterday")
    with pytest.raises(ValidationError, match="'payload' is not JSON-serialisable"):
        registry.append_event("trained", payload=object())
    with pytest.raises(ValidationError, match="'score' is not JSON-serialisable"):
        registry.append_event("evaluated", score=float("nan"))
    with pytest.raises(ValidationError, match="limit"):
        registry.events(limit=-1)
    assert _keys(store, "") == []


def test_naive_clock_is_refused(store: Storage) -> None:
    registry = Registry(store, "churn", clock=lambda: datetime(2024, 1, 1))
    with pytest.raises(ValidationError, match="naive datetime"):
        registry.append_event("trained")
    assert _keys(store, "") == []
