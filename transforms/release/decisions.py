"""Every sample's fate, in release order: exported, skipped (and why) or failed (and why).

Contract:
  * `decide` is the one place the rules are applied: the reader of a run, the chunked split
    and `--dry_run` all stream the samples through it, so they decide alike. With
    `info.splits` (`--split`), each sample to export gets its split there too.
  * Samples are built by ijson's C builder when the header scan proved it safe (nothing
    nested deeper than MAX_DEPTH, no sample over MAX_VALUE_BYTES), else by the capped
    builder (`jsonstream.build`), with the same results; a sample too deep or too large
    fails alone and is never held in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import IO, Any

from transforms.model import errors
from transforms.model.types import Sample
from transforms.release import jsonstream
from transforms.release.jsonstream import (
    MAX_DEPTH,
    STARTS,
    Events,
    TooDeep,
    build,
    iter_raw_samples,
    mib,
    skip,
    walk,
)
from transforms.release.layouts import ReleaseInfo
from transforms.release.samples import parse_sample
from transforms.release.selection import (
    Selection,
    check_identity,
    filter_reason,
    identity,
    image_url,
    metadata_text,
    sample_status,
    skip_reason,
)


@dataclasses.dataclass(frozen=True)
class _Unreadable:
    """A sample item that is not built (too deep or too large): why, and its name/uuid."""

    reason: str
    identity: Mapping[str, str]


def _capped_items(stream: IO[bytes], info: ReleaseInfo) -> Iterator[Any]:
    """The sample items `iter_raw_samples` yields, built by `build` from basic events: a
    sample nested more than MAX_DEPTH levels deep, or listed in `info.oversized`, comes as
    `_Unreadable` and is never held in memory."""
    array_prefix = info.samples_prefix[: -len(".item")]
    oversized = frozenset(info.oversized)
    events = iter(Events(stream))
    position = 0
    for prefix, event, value, _ in walk(events):
        if prefix == array_prefix and event == "start_array":
            for event, value in events:
                if event == "end_array":
                    break
                keep: dict[str, str] = {}
                if position in oversized:
                    if event in STARTS:
                        skip(events, 1, keep)
                    yield _Unreadable(
                        f"sample: more than {mib(jsonstream.MAX_VALUE_BYTES)} of JSON (the limit that "
                        "keeps memory bounded)", keep)
                else:
                    item = build(event, value, events, keep)
                    if isinstance(item, TooDeep):
                        field = item.member if event == "start_map" else f"sample{item.member}"
                        item = _Unreadable(f"{field}: nested more than {MAX_DEPTH} levels deep",
                                           keep)
                    yield item
                position += 1
        elif event in STARTS and not (prefix == "dataset" and event == "start_map"):
            skip(events)


def _sample_items(stream: IO[bytes], info: ReleaseInfo) -> Iterator[Any]:
    """The samples, from ijson's C builder when the header scan proved it safe (nothing
    nested deeper than MAX_DEPTH, no oversized sample; its per-level prefixes make memory
    quadratic in depth: 100,000 nested `[` would take 25 GB), else from `_capped_items`."""
    if info.max_depth <= MAX_DEPTH and not info.oversized:
        return iter_raw_samples(stream, info.samples_prefix)
    return _capped_items(stream, info)


@dataclasses.dataclass(frozen=True)
class Decision:
    """What happens to one sample of the release (the reader's and --dry_run's rules)."""

    position: int
    uuid: str
    name: str
    status: str | None  # label status; None when the sample is too malformed to tell
    sample: Sample | None = None  # set when the sample is to be exported
    skipped: str | None = None  # reason, when skipped (filtered out, no label, ...)
    failed: errors.SampleError | None = None  # when malformed
    image_id: int | None = None  # selected samples keep their number even when skipped
    metadata: str | None = None  # the sample's metadata as JSON text (`metadata_text`)
    image_url: str | None = None  # its image's URL, as the release has it

    @property
    def selected(self) -> bool:
        return self.image_id is not None


def decide(stream: IO[bytes], info: ReleaseInfo, selection: Selection) -> Iterator[Decision]:
    """Streams the samples and decides each one's fate, in release order."""
    later = info.duplicates.pairs()
    duplicate = next(later, None)
    index = 0
    frames = 0  # sequences: frames of the samples to export so far (`Sample.frame_base`)
    for position, raw in enumerate(_sample_items(stream, info)):
        first = None
        if duplicate is not None and duplicate[0] == position:
            first, duplicate = duplicate[1], next(later, None)
        if isinstance(raw, _Unreadable):
            uuid, name = identity(raw.identity, position)
            yield Decision(position, uuid, name, None,
                           failed=errors.SampleSchemaError(raw.reason))
            continue
        uuid, name = identity(raw, position)
        source = {"metadata": metadata_text(raw), "image_url": image_url(raw)}
        try:
            status = sample_status(raw, info.labelset)
        except errors.SampleError as e:
            yield Decision(position, uuid, name, None, failed=e, **source)
            continue
        reason = filter_reason(raw, status, selection)
        if reason is not None:
            yield Decision(position, uuid, name, status, skipped=reason, **source)
            continue
        image_id = index + 1
        index += 1
        try:
            check_identity(raw)
            if first is not None:
                raise errors.SampleSchemaError(f"uuid: duplicate uuid (first at position {first})")
            reason = skip_reason(raw, info.labelset)
            sample = (parse_sample(raw, position, image_id - 1, info, frames)
                      if reason is None else None)
        except errors.SampleError as e:
            yield Decision(position, uuid, name, status, failed=e, image_id=image_id, **source)
        else:
            if sample is not None and info.splits is not None:
                sample = dataclasses.replace(sample, split=info.splits.assign(
                    position, uuid, name, raw.get("metadata")))
            if sample is not None and sample.frames is not None:
                frames += len(sample.frames)
            yield Decision(position, uuid, name, status, sample=sample, skipped=reason,
                           image_id=image_id, **source)


def plan(stream: IO[bytes], info: ReleaseInfo, selection: Selection) -> dict[str, Any]:
    """What an export would do, without fetching anything (`--dry_run`): `decide` counted."""
    statuses: dict[str, int] = {}
    skipped: dict[str, int] = {}
    malformed: list[str] = []
    to_export = failing = 0
    for d in decide(stream, info, selection):
        if d.status is not None:
            statuses[d.status] = statuses.get(d.status, 0) + 1
        if d.skipped is not None:
            skipped[d.skipped] = skipped.get(d.skipped, 0) + 1
        elif d.failed is not None:
            failing += 1
            malformed.append(f"#{d.position}: {d.failed.reason}")
        else:
            to_export += 1
    return {"samples": info.sample_count, "statuses": dict(sorted(statuses.items())),
            "to_export": to_export, "skipped": dict(sorted(skipped.items())),
            "malformed": failing, "malformed_examples": malformed[:10]}
