"""A model's training data as ingest's value reference, read from its stored profile.

Apart from `_champion` because it needs no model: the label step asks for it, and loading
a model means importing scikit-learn.
"""

from __future__ import annotations

from retrain.config import Config
from retrain.data.quarantine import ValueReference
from retrain.drift._columns import CategoricalProfile, NumericProfile
from retrain.drift._profile import PROFILE_FILE, ReferenceProfile
from retrain.errors import NotFound, RetrainError
from retrain.registry import Registry
from retrain.storage import Storage

__all__ = ["champion_reference", "reference_from_profile"]


def reference_from_profile(profile: ReferenceProfile, source: str) -> ValueReference:
    """The ranges and category sets of a model's training data, from its profile.

    From `seen` where the profile records it (its features then describe the newest window
    only), else from the features' own ranges and categories.
    """
    ranges: dict[str, tuple[float, float]] = {}
    categories: dict[str, frozenset[str]] = {}
    if profile.seen is not None:
        for name, values in profile.seen.items():
            kind = profile.features.get(name)
            if isinstance(kind, NumericProfile) and len(values) == 2:
                ranges[name] = (float(values[0]), float(values[1]))
            elif isinstance(kind, CategoricalProfile):
                categories[name] = frozenset(str(c) for c in values)
        return ValueReference(source, ranges, categories)
    for name, col in profile.features.items():
        if isinstance(col, NumericProfile) and col.min is not None and col.max is not None:
            ranges[name] = (float(col.min), float(col.max))
        elif isinstance(col, CategoricalProfile):
            categories[name] = frozenset(str(c) for c in col.categories)
    return ValueReference(source, ranges, categories)


def champion_reference(cfg: Config, store: Storage) -> ValueReference | None:
    """The serving champion's training data as ingest's value reference, or None.

    Ranges and category sets re-base each time a new champion is deployed: values a model was
    trained on are no longer drift for the windows it serves. None (no champion, no profile,
    a profile that cannot be read) leaves ingest on the schema's first window.
    """
    registry = Registry(store, cfg.name)
    version = registry.get_alias("champion").version
    if version is None:
        return None
    try:
        profile = ReferenceProfile.from_json(registry.read_file(version, PROFILE_FILE))
    except (NotFound, RetrainError):
        return None  # the drift section says why; the schema's reference still holds
    return reference_from_profile(profile, f"champion {version}'s training data")
