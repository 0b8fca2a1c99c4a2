"""Train/val/test splits: each sample's split from a salted hash of its uuid (or from its
metadata), decided once for the whole release on the launcher.

Contract:
  * Split names are `train`, `val` and `test` (the keys Ultralytics' data.yaml knows), each
    at most once, with ratios > 0 that sum to 1 (within 1e-6), in the order given.
  * A sample's *hash point* is `u = int.from_bytes(blake2b(f"{salt}\\n{key}".encode("utf-8"),
    digest_size=8).digest(), "big") / 2**64`, in [0, 1), where `key` is the sample's uuid,
    or its name when it has no uuid (then `#position` when it has neither, the one case
    where a key depends on the release position). The sample goes to the first split whose
    cumulative ratio exceeds `u` (the last split takes what rounding leaves). A sample's
    split depends on its own key, the salt and the ratios only: the same on every run,
    runner and release version; adding or removing samples never moves another one.
  * `--split_by_metadata KEY`: the split is the sample's `metadata[KEY]`, which must be one
    of the requested names (anything else is an error naming the sample). A sample without
    it (no metadata, no key, or null) takes its hash split with `missing="hash"`, and is an
    error with `missing="error"`.
  * No requested split is empty when the release has at least as many samples to export
    as there are splits: when hashing leaves a split empty, the hash-assigned sample whose
    point lies nearest to that split's share of [0, 1) (ties: lower point, then lower
    position) among the splits that keep at least one other sample moves there, one split
    at a time in the order given. Only then, and only while the split has no sample of its
    own: once it does, the moved sample returns to its hash split. Samples whose split comes
    from their metadata never move.
  * "Samples to export" are those `release.decide` keeps (selected, labelled,
    well-formed), counted before anything is fetched, so every runner and chunking decides
    alike; a sample that then fails keeps its split (and comes back to it with
    `--only_failed`).
  * Pure: imports `transforms.model` only.
"""

from __future__ import annotations

import array
import dataclasses
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from transforms.model import errors

NAMES = ("train", "val", "test")
DEFAULT_SALT = "segments-split-v1"
_TOLERANCE = 1e-6
_SCALE = float(1 << 64)


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """What the user asked for (`--split`, `--split_salt`, `--split_by_metadata`,
    `--split_missing`)."""

    names: tuple[str, ...]
    ratios: tuple[float, ...]
    salt: str = DEFAULT_SALT
    by_metadata: str | None = None
    missing: str = "error"  # error | hash: a sample without the metadata key

    def bounds(self) -> tuple[tuple[float, float], ...]:
        """Each split's share [a, b) of [0, 1); the last one ends at 1."""
        out, start = [], 0.0
        for i, r in enumerate(self.ratios):
            end = 1.0 if i == len(self.ratios) - 1 else start + r
            out.append((start, end))
            start = end
        return tuple(out)

    def describe(self) -> str:
        text = ", ".join(f"{n} {r:g}" for n, r in zip(self.names, self.ratios))
        if self.by_metadata is not None:
            text = f"metadata {self.by_metadata!r}, else " + text if self.missing == "hash" \
                else f"metadata {self.by_metadata!r} ({', '.join(self.names)})"
        return text


def parse_ratios(value: Any) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """`train=0.8,val=0.1,test=0.1` (or a mapping) -> (names, ratios). Raises ValueError
    with a message that starts with what is wrong (the caller names the flag)."""
    if isinstance(value, Mapping):
        pairs = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, str):
        pairs = []
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if "=" not in item:
                raise ValueError(f"expected NAME=RATIO pairs such as train=0.8,val=0.2, got {item!r}")
            name, text = item.split("=", 1)
            pairs.append((name.strip(), text.strip()))
    else:
        raise ValueError("expected NAME=RATIO pairs such as train=0.8,val=0.2")
    if not pairs:
        raise ValueError("no split given")
    names, ratios = [], []
    for name, raw in pairs:
        if name not in NAMES:
            raise ValueError(f"unknown split {name!r} (choose from {', '.join(NAMES)})")
        if name in names:
            raise ValueError(f"split {name!r} given twice")
        try:
            ratio = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: ratio {raw!r} is not a number") from None
        if isinstance(raw, bool) or not math.isfinite(ratio) or not 0 < ratio <= 1:
            raise ValueError(f"{name}: ratio {raw!r} is not in (0, 1]")
        names.append(name)
        ratios.append(ratio)
    total = sum(ratios)
    if abs(total - 1.0) > _TOLERANCE:
        raise ValueError(f"ratios sum to {total:g}, not 1")
    return tuple(names), tuple(ratios)


def hash_point(key: str, salt: str) -> float:
    """The sample's point in [0, 1) (see the contract)."""
    digest = hashlib.blake2b(f"{salt}\n{key}".encode("utf-8", "surrogatepass"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def sample_key(uuid: str, name: str) -> str:
    """What is hashed: the uuid, else the name (`#position` when the sample has neither)."""
    return uuid or name


def hash_split(point: float, spec: SplitSpec) -> str:
    for name, (_, end) in zip(spec.names, spec.bounds()):
        if point < end:
            return name
    return spec.names[-1]


_VALUE = re.compile(r"[A-Za-z0-9_]+")


def metadata_split(metadata: Any, spec: SplitSpec, where: str) -> str | None:
    """The split a sample's metadata names, or None when it has none. Raises ReleaseError
    naming `where` (the sample) for a value that is not a requested split."""
    if not isinstance(metadata, Mapping):
        return None
    value = metadata.get(spec.by_metadata)
    if value is None:
        return None
    if not isinstance(value, str) or value not in spec.names:
        raise errors.ReleaseError(
            f"--split_by_metadata: {where} has {spec.by_metadata}={value!r}, not one of the "
            f"requested splits ({', '.join(spec.names)}; set them with --split)")
    return value


@dataclasses.dataclass(frozen=True)
class SplitPlan:
    """The splits of one release: the spec, and the few samples the non-empty rule moved
    ({release position: split}). Small: it travels with `ReleaseInfo` to every reader."""

    spec: SplitSpec
    moved: tuple[tuple[int, str], ...] = ()
    counts: tuple[tuple[str, int], ...] = ()  # samples to export per split, in spec order

    def assign(self, position: int, uuid: str, name: str, metadata: Any) -> str:
        """The split of the sample to export at `position` (planned: never raises for a
        release the plan was made from)."""
        for p, split in self.moved:
            if p == position:
                return split
        if self.spec.by_metadata is not None:
            chosen = metadata_split(metadata, self.spec, f"sample {name!r}")
            if chosen is not None:
                return chosen
        return hash_split(hash_point(sample_key(uuid, name), self.spec.salt), self.spec)


def plan(samples: Iterable[tuple[int, str, str, Any]], spec: SplitSpec) -> SplitPlan:
    """The plan from every sample to export, as (position, uuid, name, metadata) in
    release order. Raises ReleaseError (metadata missing without a fallback, a bad value,
    or a split that nothing can fill)."""
    # 18 bytes a sample: a million samples hold 18 MB on the launcher.
    positions, points = array.array("q"), array.array("d")
    chosen, movable = bytearray(), bytearray()  # split number; may the rule move it
    number = {n: i for i, n in enumerate(spec.names)}
    for position, uuid, name, metadata in samples:
        point = hash_point(sample_key(uuid, name), spec.salt)
        split = None
        if spec.by_metadata is not None:
            split = metadata_split(metadata, spec, f"sample {name!r} (position {position})")
            if split is None and spec.missing == "error":
                raise errors.ReleaseError(
                    f"--split_by_metadata: sample {name!r} (position {position}) has no "
                    f"metadata {spec.by_metadata!r}; give every sample one, or add "
                    "--split_missing hash to split those by --split's ratios")
        positions.append(position)
        points.append(point)
        movable.append(split is None)
        chosen.append(number[split if split is not None else hash_split(point, spec)])
    counts = [0] * len(spec.names)
    for c in chosen:
        counts[c] += 1
    moved: list[tuple[int, str]] = []
    if len(positions) >= len(spec.names):
        bounds = spec.bounds()
        for target, name in enumerate(spec.names):
            if counts[target]:
                continue
            a, b = bounds[target]
            best = None
            for i, point in enumerate(points):
                if not movable[i] or counts[chosen[i]] < 2:
                    continue
                distance = a - point if point < a else point - b if point >= b else 0.0
                rank = (distance, point, positions[i])
                if best is None or rank < best[0]:
                    best = (rank, i)
            if best is None:
                break
            i = best[1]
            counts[chosen[i]] -= 1
            counts[target] += 1
            chosen[i] = target
            movable[i] = False
            moved.append((positions[i], name))
    empty = [n for n, c in zip(spec.names, counts) if c == 0]
    if empty and spec.by_metadata is not None and len(positions) >= len(spec.names):
        raise errors.ReleaseError(
            f"--split_by_metadata: no sample can go to split {empty[0]!r} (every sample "
            f"without metadata {spec.by_metadata!r} is needed where it is); name only the "
            "splits the metadata uses in --split, or add --split_missing hash")
    return SplitPlan(spec, tuple(sorted(moved)), tuple(zip(spec.names, counts)))
