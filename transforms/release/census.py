"""What the samples' labels and metadata hold, counted by the header scan so that filters
that select nothing are refused before any work.

Contract:
  * Built only when the run has a filter (`--filter_by`, `--filter_by_metadata`): the scan
    feeds it every event of every sample (`feed`), and it keeps counts, never samples:
    per labelset, the samples of each label status among those the metadata filter keeps;
    the samples whose `labels` is missing or null (UNLABELED in every labelset); the names
    of metadata keys seen (the first `MAX_KEYS`, for messages).
  * Statuses follow `selection.sample_status`: a null label is UNLABELED, a missing
    labelset too; a label that is not an object, or has no string `label_status`, and a
    `labels` that is not an object, make the sample malformed (it fails, never selected).
  * The metadata filter follows `selection.filter_reason`: metadata must be an object
    holding every KEY with a value equal (Python ==) to VALUE; only those values are built.
  * `selected(labelset, filter_by)` is exact for well-formed samples; `check` raises
    `ReleaseError` naming the filter and what the release has when nothing is selected.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from transforms.model import errors
from transforms.release.jsonstream import ENDS, STARTS
from transforms.release.selection import UNLABELED, Selection

MAX_KEYS = 50  # metadata key names kept for messages
_MALFORMED = None  # a label whose status cannot be read


@dataclasses.dataclass
class Census:
    metadata_filters: tuple[tuple[str, Any], ...] = ()
    kept: int = 0  # samples the metadata filter keeps (all samples without one)
    no_labels: int = 0  # ... of which `labels` is missing or null
    bad_labels: int = 0  # ... of which `labels` is not an object
    statuses: dict[str, dict[Any, int]] = dataclasses.field(default_factory=dict)
    metadata_keys: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self._wanted = {k for k, _ in self.metadata_filters}
        self._reset()

    def _reset(self) -> None:
        self._k1 = self._labelset = self._k3 = self._meta_key = None
        self._labels = "missing"  # missing | object | null | bad
        self._label_status: dict[str, Any] = {}
        self._meta_object = False
        self._meta_values: dict[str, Any] = {}
        self._stack: list[Any] = []  # a metadata value being built
        self._pending: list[Any] = []  # its map keys

    # ------------------------------------------------------------------ events

    def feed(self, event: str, value: Any, depth: int) -> None:
        """One event of a sample; `depth` is the level of the container it is in (the
        sample object is level 1; a start or end event gives its own container's level)."""
        if depth == 1:
            if event == "start_map" or event == "start_array":
                self._reset()
            elif event in ENDS:
                self._tally()
            elif event == "map_key":
                self._k1 = value
            elif self._k1 == "labels":
                self._labels = "null" if event == "null" else "bad"
            return
        if self._k1 == "labels":
            self._label_event(event, value, depth)
        elif self._k1 == "metadata":
            self._metadata_event(event, value, depth)

    def _label_event(self, event: str, value: Any, depth: int) -> None:
        if depth == 2:
            if event == "start_map":
                self._labels = "object"
            elif event == "start_array":
                self._labels = "bad"
            elif event == "map_key":
                self._labelset = value
            elif event not in ENDS and self._labels == "object":  # labels[ls] is a scalar
                self._label_status[self._labelset] = UNLABELED if event == "null" else _MALFORMED
        elif depth == 3 and self._labels == "object":
            if event in STARTS:
                self._label_status[self._labelset] = _MALFORMED  # until a status is read
                self._k3 = None
            elif event == "map_key":
                self._k3 = value
            elif event not in ENDS and self._k3 == "label_status":
                self._label_status[self._labelset] = (
                    value.upper() if event == "string" else _MALFORMED)

    def _metadata_event(self, event: str, value: Any, depth: int) -> None:
        if self._stack:  # building the value of a filtered key
            if event == "map_key":
                self._pending.append(value)
                return
            if event in STARTS:
                self._stack.append({} if event == "start_map" else [])
                return
            if event in ENDS:
                value = self._stack.pop()
                if not self._stack:
                    self._meta_values[self._meta_key] = value
                    return
            parent = self._stack[-1]
            if type(parent) is dict:
                parent[self._pending.pop()] = value
            else:
                parent.append(value)
        elif depth == 2:
            if event == "start_map":
                self._meta_object = True
            elif event == "map_key":
                self._meta_key = value
                if len(self.metadata_keys) < MAX_KEYS and value not in self.metadata_keys:
                    self.metadata_keys.append(value)
            elif event not in STARTS and event not in ENDS and self._meta_key in self._wanted:
                self._meta_values[self._meta_key] = value
        elif depth == 3 and event in STARTS and self._meta_key in self._wanted:
            self._stack.append({} if event == "start_map" else [])

    def _tally(self) -> None:
        if self.metadata_filters and not (self._meta_object and all(
                k in self._meta_values and self._meta_values[k] == v
                for k, v in self.metadata_filters)):
            return
        self.kept += 1
        if self._labels in ("missing", "null"):
            self.no_labels += 1
        elif self._labels == "bad":
            self.bad_labels += 1
        else:
            for labelset, status in self._label_status.items():
                counts = self.statuses.setdefault(labelset, {})
                counts[status] = counts.get(status, 0) + 1

    # ------------------------------------------------------------------ questions

    def status_counts(self, labelset: str) -> dict[str, int]:
        """Label status -> samples the metadata filter keeps, in `labelset`."""
        counts = self.statuses.get(labelset, {})
        listed = sum(counts.values())
        out = {s: n for s, n in counts.items() if s is not _MALFORMED}
        unlabeled = self.kept - self.bad_labels - listed + out.get(UNLABELED, 0)
        if unlabeled:
            out[UNLABELED] = unlabeled
        else:
            out.pop(UNLABELED, None)
        return dict(sorted(out.items()))

    def selected(self, labelset: str, filter_by: tuple[str, ...] | None) -> int:
        counts = self.status_counts(labelset)
        return sum(n for s, n in counts.items() if filter_by is None or s in filter_by)


def check(census: Census | None, samples: int, labelset: str, selection: Selection) -> None:
    """Raises `ReleaseError` when the filters select no sample of a non-empty release,
    naming the filter to blame and what the release has."""
    if census is None or not samples or census.selected(labelset, selection.filter_by):
        return
    statuses = census.status_counts(labelset)
    have = ", ".join(f"{s} {n}" for s, n in statuses.items()) or "none"
    if selection.filter_by_metadata and not census.kept:
        pairs = " ".join(f"{k}={v!r}" for k, v in selection.filter_by_metadata)
        keys = ", ".join(sorted(census.metadata_keys)) or "none"
        raise errors.ReleaseError(
            f"--filter_by_metadata {pairs}: selects none of the {samples} samples (metadata "
            f"keys seen: {keys})")
    where = " among those --filter_by_metadata keeps" if selection.filter_by_metadata else ""
    raise errors.ReleaseError(
        f"--filter_by {','.join(selection.filter_by or ())}: selects none of the {samples} "
        f"samples (label statuses in labelset {labelset!r}{where}: {have})")
