"""A model registry on any `Storage`: immutable versions, CAS-moved aliases, an event log.

Layout for a model ``M`` (keys below the storage root)::

    models/M/versions/<version>/<file>      create-only: a version never changes
    models/M/versions/<version>/_COMPLETE   written last; lists every file with its sha256
    models/M/aliases/<alias>.json           {"version", "updated_at", "previous"}, moved by CAS
    models/M/events/<time>-<id8>.json       one create-only object per event (append-only)
    models/M/events/<kind>.<key>.json       an event with an idempotency key: at most one

A version without ``_COMPLETE`` (a writer crashed half way) is invisible: it is not listed, its
files cannot be read through the registry and no alias can point at it. Re-running `register`
with the same files completes it.

The registry records; it does not decide. Promotion logic lives elsewhere and calls
`set_alias` and `append_event` with its decision, so a lost race or a retry never mixes the two.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from retrain._crash import crash_point
from retrain.errors import AlreadyExists, NotFound, PreconditionFailed, ValidationError
from retrain.storage import NO_OBJECT, Storage

__all__ = ["EVENT_KINDS", "MODEL_CARD_FILE", "MODEL_FILE", "AliasState", "Registry", "event_key"]

#: The files of a model version: the model (skops) and its card (JSON, with the model's sha256).
MODEL_FILE = "model.skops"
MODEL_CARD_FILE = "model.json"

#: The kinds of event the log accepts, in the order they usually happen.
EVENT_KINDS: tuple[str, ...] = (
    "trained",
    "evaluated",
    "blessed",
    "rejected",
    "registered",
    "alias_moved",
    "deployed",
    "canary_started",
    "promoted",
    "rolled_back",
    "lease_broken",
)

# Names start with a letter or digit: no '.', '..' or hidden names, and no file name can
# collide with the `_COMPLETE` marker.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_NAME_RULE = "1-128 letters, digits, '.', '-' or '_', starting with a letter or digit"
_COMPLETE = "_COMPLETE"
_RESERVED_EVENT_FIELDS = frozenset({"kind", "time", "model", "id", "key"})


@dataclass(frozen=True)
class AliasState:
    """Where an alias points, and the generation to pass to the next `set_alias`.

    `generation` is 0 for an alias that was never set. `previous` is the version it pointed at
    before its last move (the rollback target).
    """

    version: str | None
    generation: int
    previous: str | None
    updated_at: str | None


class Registry:
    """Versions, aliases and events of one model on a `Storage`.

    Args:
        storage: where everything is kept (local directory or gs://).
        model_name: the model's name; letters, digits, '.', '-', '_'.
        clock: returns the current time (timezone-aware); injectable for tests.
    """

    def __init__(
        self,
        storage: Storage,
        model_name: str,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        _check_name("model name", model_name)
        self.storage = storage
        self.model_name = model_name
        self.clock = clock if clock is not None else _utc_now
        self._base = f"models/{model_name}"
        self._event_lock = threading.Lock()
        self._last_event_time: datetime | None = None

    # -- versions ---------------------------------------------------------------------------

    def register(self, version: str, files: Mapping[str, bytes]) -> None:
        """Write a new immutable version: every file create-only (in order), then `_COMPLETE`.

        Idempotent: re-registering a complete version with byte-identical files returns
        quietly, and a re-run after a crash completes a partial version. Raises AlreadyExists
        if the version exists with different content (register under a new version name).
        """
        _check_name("version", version)
        problems: list[str] = []
        if not files:
            problems.append("no files given: a version needs at least one file")
        for name, data in files.items():
            problem = _file_name_problem(name)
            if problem:
                problems.append(problem)
            if not isinstance(data, bytes):
                problems.append(f"file {name!r}: content must be bytes, got {type(data).__name__}")
        if problems:
            raise ValidationError(f"cannot register {self._label(version)}", problems)

        digests = {name: _sha256(data) for name, data in files.items()}
        manifest = self._manifest(version)
        if manifest is not None:
            self._check_same(version, manifest, digests)
            return

        # Files left by an earlier attempt that this one does not write would silently join
        # the version when it is completed.
        prefix = self._version_key(version)
        stray = sorted(
            rel
            for key in self.storage.list(prefix)
            if (rel := key[len(prefix) + 1 :]) not in files and rel != _COMPLETE
        )
        if stray:
            raise AlreadyExists(
                f"{self._label(version)} was partly written with other files "
                f"({', '.join(stray)}); register under a new version name"
            )

        # In the order given: a caller puts first the file others name by hash (the model
        # before its card), so a crash leaves a prefix a re-run can complete consistently.
        for name in files:
            key = self._file_key(version, name)
            try:
                self.storage.create(key, files[name])
            except AlreadyExists:
                # A crashed or concurrent run of the same registration wrote it: fine if equal.
                if self.storage.read_bytes(key) != files[name]:
                    raise AlreadyExists(
                        f"{self.storage.uri(key)} already exists with different content; "
                        f"versions are immutable, register under a new version name"
                    ) from None
            crash_point("register:file")

        record = {
            "model": self.model_name,
            "version": version,
            "registered_at": self._now().isoformat(timespec="microseconds"),
            "files": {
                name: {"sha256": digests[name], "bytes": len(files[name])} for name in sorted(files)
            },
        }
        try:
            self.storage.create(self._complete_key(version), _dump(record))
        except AlreadyExists:
            # A concurrent registration of the same version finished first.
            manifest = self._manifest(version)
            if manifest is None:  # pragma: no cover - create-only objects do not vanish
                raise
            self._check_same(version, manifest, digests)

    def versions(self) -> list[str]:
        """Complete versions, oldest registration first."""
        prefix = f"{self._base}/versions/"
        found: list[tuple[str, str]] = []
        for key in self.storage.list(prefix.rstrip("/")):
            version, _, rest = key[len(prefix) :].partition("/")
            if rest != _COMPLETE:
                continue
            manifest = self._manifest(version)
            if manifest is not None:
                found.append((str(manifest.get("registered_at", "")), version))
        # ISO times in one format and zone compare correctly as text.
        return [version for _, version in sorted(found)]

    def partial_files(self, version: str) -> dict[str, bytes]:
        """The files an interrupted `register` left of an incomplete version ({} if none)."""
        if self._manifest(version) is not None:
            return {}
        prefix = self._version_key(version)
        return {
            key[len(prefix) + 1 :]: self.storage.read_bytes(key)
            for key in self.storage.list(prefix)
            if key[len(prefix) + 1 :] != _COMPLETE
        }

    def read_file(self, version: str, name: str) -> bytes:
        """A file of a complete version. Raises NotFound for unknown or incomplete versions."""
        key = self._file_key(version, name)
        manifest = self._manifest(version)
        if manifest is None:
            raise NotFound(f"{self._label(version)} is not registered (or is incomplete)")
        data = self.storage.read_bytes(key)
        # A registered version is immutable: its bytes must still be the ones registered.
        entry = manifest["files"].get(name)
        expected = entry.get("sha256") if isinstance(entry, dict) else None
        if expected is None:
            raise NotFound(f"{self._label(version)} has no file {name!r}")
        if _sha256(data) != expected:
            raise ValidationError(
                f"{self.storage.uri(key)} was modified after registration (sha256 "
                f"{_sha256(data)} != registered {expected}); refusing to use it"
            )
        return data

    def file_uri(self, version: str, name: str) -> str:
        """The URI of a version's file (for model cards and serving manifests)."""
        return self.storage.uri(self._file_key(version, name))

    def version_uri(self, version: str) -> str:
        """The URI of a version's directory."""
        return self.storage.uri(self._version_key(version))

    # -- aliases ----------------------------------------------------------------------------

    def get_alias(self, alias: str) -> AliasState:
        """Where an alias points now (version None and generation 0 if never set)."""
        key = self._alias_key(alias)
        data, generation = self.storage.read_versioned(key)
        if data is None:
            return AliasState(version=None, generation=NO_OBJECT, previous=None, updated_at=None)
        doc = _load(data, self.storage.uri(key))
        fields = {
            "version": doc.get("version"),
            "previous": doc.get("previous"),
            "updated_at": doc.get("updated_at"),
        }
        bad = [k for k, v in fields.items() if v is not None and not isinstance(v, str)]
        if bad:
            raise ValidationError(
                f"alias object {self.storage.uri(key)} is malformed: "
                f"{', '.join(bad)} must be strings or null"
            )
        return AliasState(
            version=fields["version"],
            generation=generation,
            previous=fields["previous"],
            updated_at=fields["updated_at"],
        )

    def set_alias(self, alias: str, version: str | None, expected_generation: int) -> AliasState:
        """Point an alias at a complete version (None clears it) if it has not moved.

        `expected_generation` is the generation from the caller's `get_alias` (0: not set yet).
        Raises ValidationError for a version that is not registered and complete, and
        PreconditionFailed if someone else moved the alias first; nothing is written then.
        """
        key = self._alias_key(alias)
        if version is not None:
            _check_name("version", version)
            if not self.storage.exists(self._complete_key(version)):
                known = self.versions()
                raise ValidationError(
                    f"cannot point alias {alias!r} at {self._label(version)}: it is not a "
                    f"complete registered version (registered: {', '.join(known) or 'none'})"
                )
        current = self.get_alias(alias)
        if current.generation != expected_generation:
            raise PreconditionFailed(
                f"alias {alias!r} of model {self.model_name!r} moved: it is at generation "
                f"{current.generation} ({current.version}), expected {expected_generation}; "
                f"read it again and decide anew"
            )
        # Re-pointing at the same version keeps the rollback target instead of erasing it.
        previous = current.previous if current.version == version else current.version
        updated_at = self._now().isoformat(timespec="microseconds")
        doc = {"version": version, "updated_at": updated_at, "previous": previous}
        generation = self.storage.compare_and_swap(key, _dump(doc), expected_generation)
        return AliasState(
            version=version, generation=generation, previous=previous, updated_at=updated_at
        )

    def recorded_alias(self, alias: str) -> dict[str, Any] | None:
        """The newest event that put a version on `alias` (None if the log names none).

        Deploys record ``alias_moved``; a promotion makes its canary the champion.
        """
        found: dict[str, Any] | None = None
        for event in self.events():
            kind, version = event.get("kind"), event.get("version")
            if not isinstance(version, str):
                continue
            if (kind == "alias_moved" and event.get("alias") == alias) or (
                alias == "champion" and kind == "promoted"
            ):
                found = event
        return found

    # -- events -----------------------------------------------------------------------------

    def append_event(self, kind: str, *, once: str | None = None, **fields: Any) -> dict[str, Any]:
        """Append one event to the model's log and return it.

        The event holds `kind`, `time` (ISO 8601, UTC), `model`, `id` and the JSON-serialisable
        `fields`. Events from one Registry object get strictly increasing times.

        `once` is an idempotency key (see `event_key`): the event is written create-only under
        it, so every attempt of one fact may write it and the log holds it exactly once. A
        retry returns the event already there.
        """
        problems: list[str] = []
        if once is not None:
            problem = _file_name_problem(once)
            if problem or "/" in once:
                problems.append(f"event key {once!r}: use {_NAME_RULE}")
        if kind not in EVENT_KINDS:
            problems.append(f"unknown event kind {kind!r}; use one of {', '.join(EVENT_KINDS)}")
        for name in sorted(_RESERVED_EVENT_FIELDS & fields.keys()):
            problems.append(f"field {name!r} is set by the registry itself")
        for name, value in sorted(fields.items()):
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as err:
                problems.append(f"field {name!r} is not JSON-serialisable: {err}")
        if problems:
            raise ValidationError(f"bad event for model {self.model_name!r}", problems)

        with self._event_lock:
            when = self._now()
            # Keep this writer's events in call order even with a coarse or frozen clock.
            if self._last_event_time is not None and when <= self._last_event_time:
                when = self._last_event_time + timedelta(microseconds=1)
            self._last_event_time = when
        event_id = uuid.uuid4().hex[:8]
        event = {
            "kind": kind,
            "time": when.isoformat(timespec="microseconds"),
            "model": self.model_name,
            "id": event_id,
            **fields,
        }
        # A compact UTC stamp sorts as text, so listing order is time order.
        key = f"{self._base}/events/{when:%Y%m%dT%H%M%S.%fZ}-{event_id}.json"
        if once is not None:
            key = f"{self._base}/events/{kind}.{once}.json"
            event["key"] = once
        try:
            self.storage.create(key, _dump(event))
        except AlreadyExists:
            if once is None:  # pragma: no cover - a random id does not collide
                raise
            return _load(self.storage.read_bytes(key), self.storage.uri(key))
        return event

    def has_event(self, kind: str, once: str) -> bool:
        """Whether the event of `kind` with idempotency key `once` is in the log."""
        return self.storage.exists(f"{self._base}/events/{kind}.{once}.json")

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Events oldest first; `limit` keeps only the newest `limit` of them.

        Keyed events are named by their key, not their time, so the log is ordered by the
        `time` each event holds (ties by name).
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise ValidationError(f"events limit must be an integer >= 0, got {limit!r}")
        keys = [k for k in self.storage.list(f"{self._base}/events") if k.endswith(".json")]
        loaded = [(k, _load(self.storage.read_bytes(k), self.storage.uri(k))) for k in keys]
        loaded.sort(key=lambda item: (str(item[1].get("time", "")), item[0]))
        events = [event for _, event in loaded]
        if limit is not None:
            events = events[len(events) - limit :] if limit else []
        return events

    # -- helpers ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValidationError(
                "the registry clock returned a naive datetime; "
                "return timezone-aware times, e.g. datetime.now(timezone.utc)"
            )
        return now.astimezone(timezone.utc)

    def _label(self, version: str) -> str:
        return f"version {version!r} of model {self.model_name!r}"

    def _version_key(self, version: str) -> str:
        _check_name("version", version)
        return f"{self._base}/versions/{version}"

    def _complete_key(self, version: str) -> str:
        return f"{self._version_key(version)}/{_COMPLETE}"

    def _file_key(self, version: str, name: str) -> str:
        problem = _file_name_problem(name)
        if problem:
            raise ValidationError(problem)
        return f"{self._version_key(version)}/{name}"

    def _alias_key(self, alias: str) -> str:
        _check_name("alias", alias)
        return f"{self._base}/aliases/{alias}.json"

    def _manifest(self, version: str) -> dict[str, Any] | None:
        key = self._complete_key(version)
        try:
            data = self.storage.read_bytes(key)
        except NotFound:
            return None
        doc = _load(data, self.storage.uri(key))
        if not isinstance(doc.get("files"), dict):
            raise ValidationError(f"{self.storage.uri(key)} is malformed: no 'files' mapping")
        return doc

    def _check_same(self, version: str, manifest: dict[str, Any], digests: dict[str, str]) -> None:
        """Raise AlreadyExists unless a complete version holds exactly these files."""
        recorded = {
            name: entry.get("sha256") if isinstance(entry, dict) else None
            for name, entry in manifest["files"].items()
        }
        if recorded == digests:
            return
        differences = sorted(
            f"{name}: {_difference(name, recorded, digests)}"
            for name in recorded.keys() | digests.keys()
            if recorded.get(name) != digests.get(name)
        )
        raise AlreadyExists(
            f"{self._label(version)} is already registered with different content "
            f"({'; '.join(differences)}); versions are immutable, use a new version name"
        )


def event_key(*parts: object) -> str:
    """An event idempotency key from its identifying parts (kind, version, run, ...).

    Readable when the parts are plain names, a digest otherwise; always a valid name.
    """
    text = ".".join("-" if p is None else str(p) for p in parts)
    if _NAME.match(text) and ".." not in text:
        return text
    return "h" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(f"invalid {what} {name!r}: use {_NAME_RULE}")


def _file_name_problem(name: str) -> str | None:
    """Why a file name is unusable (None if fine). Names may have '/'-separated folders."""
    if isinstance(name, str) and all(_NAME.match(seg) for seg in name.split("/")):
        return None
    return f"invalid file name {name!r}: each '/'-separated part must be {_NAME_RULE}"


def _difference(name: str, recorded: Mapping[str, Any], given: Mapping[str, Any]) -> str:
    if name not in given:
        return "registered, not given now"
    if name not in recorded:
        return "given now, not registered"
    return "content differs"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dump(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def _load(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValidationError(f"{where} is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ValidationError(f"{where} must hold a JSON object, got {type(doc).__name__}")
    return doc


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)
