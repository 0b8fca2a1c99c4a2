"""The run report: small aggregates of every sample's fate, merged in any order.

Contract:
  * `ReportAccumulator` is a combiner: `add(acc, row)`, `merge(accs)`, `finalize(acc, header)`
    give the same result whatever the order or partitioning (tested).
  * It carries only small aggregates: counts per status, per skip reason and per failure
    stage; instances and pixels per category; files and bytes per format, and files left
    out per format; with --split, samples exported and failed per split (`splits`, every
    requested split); the `MAX_LISTED` failed samples with the lowest release positions (so
    the report is deterministic); failures grouped by stage and kind of reason
    (`failure_kind`: URLs, paths, indexes and numbers taken out, HTTP statuses kept) and
    warnings by kind (`warning_kind`: the text before its first ": "), each with a count
    and the `EXAMPLES` samples of lowest position.
  * The report holds no secrets: URLs in reasons are already redacted, the release URL is
    redacted by the caller.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping

from transforms.model import paths
from transforms.model.types import EXPORTED, FAILED, SKIPPED, ManifestRow

MAX_LISTED = 50
EXAMPLES = 3  # samples named per group of failures or warnings
MAX_GROUPS = 100  # kinds of failure or warning listed (the most frequent; ties by text)

_URL = re.compile(r"\S+://\S*")
_PATH = re.compile(r"\S*[/\\]\S*")
_NUMBER = re.compile(r"(?<!HTTP )(?<!\d)\d{2,}|(?<=\[)\d+(?=\])")


def failure_kind(reason: str) -> str:
    """A failure reason without what differs from sample to sample: `bitmap: HTTP 404 for
    https://...` -> `bitmap: HTTP 404`; `annotations[3].id: expected an integer, got 'x'`
    -> `annotations[N].id: expected an integer`."""
    text = _URL.sub("<url>", reason)
    for cut in (" for <url>", ": <url>", " in <url>", ", got ", " (first at position"):
        text = text.split(cut, 1)[0]
    head, sep, tail = text.rpartition(": ")
    if sep and _PATH.fullmatch(tail):
        text = head  # a local file's path
    return _NUMBER.sub("N", text)


def warning_kind(warning: str) -> str:
    """`annotations without pixels: 3, 7` -> `annotations without pixels` (a sequence
    frame's `frame 2: ...` counts with the same warning of other frames)."""
    return re.sub(r"^frame \d+: ", "", warning).split(": ", 1)[0]


@dataclasses.dataclass
class Report:
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: dict[str, int] = dataclasses.field(default_factory=dict)
    categories: dict[int, list[int]] = dataclasses.field(default_factory=dict)  # [instances, pixels]
    formats: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # [files, bytes]
    warnings: int = 0
    failures: list[tuple[int, str, str, str]] = dataclasses.field(default_factory=list)
    left_out: dict[str, int] = dataclasses.field(default_factory=dict)  # format -> files
    # (stage, kind) -> [samples, [(position, name), ...]]; kind -> [samples, [...]]
    failure_groups: dict[tuple[str, str], list] = dataclasses.field(default_factory=dict)
    warning_groups: dict[str, list] = dataclasses.field(default_factory=dict)
    splits: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # [exported, failed]


def _bump(d: dict, key, by: int = 1) -> None:
    d[key] = d.get(key, 0) + by


def _group(groups: dict, key, examples: list[tuple[int, str]], samples: int = 1) -> None:
    entry = groups.setdefault(key, [0, []])
    entry[0] += samples
    entry[1] = sorted(entry[1] + examples)[:EXAMPLES]


def _skip_reason(reason: str | None) -> str:
    """Skip reasons without per-sample details (e.g. the status in "filtered out ... (status
    X)" is kept, but it is the same few texts for every sample)."""
    return reason or "unknown"


class ReportAccumulator:
    def create(self) -> Report:
        return Report()

    def add(self, acc: Report, row: ManifestRow) -> Report:
        _bump(acc.statuses, row.status)
        if row.status == SKIPPED:
            _bump(acc.skipped, _skip_reason(row.reason))
        elif row.status == FAILED:
            _bump(acc.failed, row.stage or "unknown")
            acc.failures.append((row.position, row.name, row.stage or "", row.reason or ""))
            if len(acc.failures) > 2 * MAX_LISTED:
                acc.failures = sorted(acc.failures)[:MAX_LISTED]
            _group(acc.failure_groups, (row.stage or "", failure_kind(row.reason or "")),
                   [(row.position, row.name)])
        elif row.status == EXPORTED:
            for cat, instances, pixels in row.category_stats:
                stats = acc.categories.setdefault(cat, [0, 0])
                stats[0] += instances
                stats[1] += pixels
            for fmt, size in row.file_sizes:
                stats = acc.formats.setdefault(fmt, [0, 0])
                stats[0] += 1
                stats[1] += size
        for fmt in row.left_out:
            _bump(acc.left_out, fmt)
        if row.split is not None and row.status in (EXPORTED, FAILED):
            acc.splits.setdefault(row.split, [0, 0])[row.status == FAILED] += 1
        if row.warnings:
            acc.warnings += 1
            for kind in sorted({warning_kind(w) for w in row.warnings}):
                _group(acc.warning_groups, kind, [(row.position, row.name)])
        return acc

    def merge(self, accs: Iterable[Report]) -> Report:
        accs = iter(accs)
        first = next(accs)  # only the first accumulator may be mutated
        for other in accs:
            for name in ("statuses", "skipped", "failed"):
                for k, v in getattr(other, name).items():
                    _bump(getattr(first, name), k, v)
            for name in ("categories", "formats", "splits"):
                for k, (a, b) in getattr(other, name).items():
                    stats = getattr(first, name).setdefault(k, [0, 0])
                    stats[0] += a
                    stats[1] += b
            first.warnings += other.warnings
            first.failures = sorted(first.failures + other.failures)[:MAX_LISTED]
            for k, v in other.left_out.items():
                _bump(first.left_out, k, v)
            for name in ("failure_groups", "warning_groups"):
                groups = getattr(first, name)
                for key, (n, examples) in getattr(other, name).items():
                    _group(groups, key, examples, n)
        return first

    def finalize(self, acc: Report, header: Mapping) -> dict:
        """A JSON-ready dict; `header` holds release and options (already redacted)."""
        names = dict(header.get("category_names", {}))
        exported = acc.statuses.get(EXPORTED, 0)
        failed = acc.statuses.get(FAILED, 0)
        skipped = acc.statuses.get(SKIPPED, 0)
        filtered = sum(n for r, n in acc.skipped.items() if r.startswith("filtered out"))
        formats = {fmt: acc.formats.get(fmt, [0, 0]) for fmt in {*acc.formats, *acc.left_out}}
        out = {
            "release": dict(header.get("release", {})),
            "options": dict(header.get("options", {})),
            "samples": {
                "in_release": exported + failed + skipped,
                "selected": exported + failed + skipped - filtered,
                "exported": exported,
                "failed": failed,
                "skipped": skipped,
                "with_warnings": acc.warnings,
            },
            "skipped_by_reason": dict(sorted(acc.skipped.items())),
            "failed_by_stage": dict(sorted(acc.failed.items())),
            "categories": [
                {"id": cid, "name": names.get(cid, ""), "instances": s[0], "pixels": s[1]}
                for cid, s in sorted(acc.categories.items())
            ],
            "formats": {fmt: {"files": files, "bytes": size, "left_out": acc.left_out.get(fmt, 0)}
                        for fmt, (files, size) in sorted(formats.items())},
            "failures_by_reason": [
                {"stage": stage, "reason": kind, "samples": n,
                 "examples": [name for _, name in examples]}
                for (stage, kind), (n, examples) in _largest(acc.failure_groups)],
            "warnings_by_reason": [
                {"warning": kind, "samples": n, "examples": [name for _, name in examples]}
                for kind, (n, examples) in _largest(acc.warning_groups)],
            "failures": [
                {"position": p, "name": n, "stage": st, "reason": r}
                for p, n, st, r in sorted(acc.failures)[:MAX_LISTED]
            ],
        }
        if header.get("splits"):  # --split: every requested split, even an empty one
            out["splits"] = {s: {"exported": acc.splits.get(s, [0, 0])[0],
                                 "failed": acc.splits.get(s, [0, 0])[1]}
                             for s in header["splits"]}
        return out


def _largest(groups: dict) -> list:
    return sorted(groups.items(), key=lambda kv: (-kv[1][0], kv[0]))[:MAX_GROUPS]


def report_bytes(report: Mapping) -> bytes:
    """report.json's bytes (sorted keys, so the file depends only on the report)."""
    return (json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def format_table(report: Mapping) -> str:
    """The run report as a few readable lines for the terminal: failures and warnings
    grouped by reason, with a few sample names each."""
    s = report["samples"]
    lines = [
        f"release {report['release'].get('name')!r} ({report['release'].get('task_type')}): "
        f"{s['in_release']} samples, {s['selected']} selected -> {s['exported']} exported, "
        f"{s['failed']} failed, {s['skipped']} skipped ({s['with_warnings']} with warnings)",
    ]
    for reason, n in report["skipped_by_reason"].items():
        lines.append(f"  skipped {n:>7}  {reason}")
    if report["categories"]:
        lines.append("  category                 instances       pixels")
        for c in report["categories"]:
            lines.append(f"  {c['name'][:22]:22s} {c['instances']:>11} {c['pixels']:>12}")
    if report.get("splits"):
        lines.append("  split                     exported       failed")
        for split, n in report["splits"].items():
            lines.append(f"  {split:22s} {n['exported']:>11} {n['failed']:>12}")
    if report["formats"]:
        lines.append("  format                       files        bytes")
        for fmt, f in report["formats"].items():
            left = f"  ({f['left_out']} left out)" if f.get("left_out") else ""
            lines.append(f"  {fmt:22s} {f['files']:>11} {f['bytes']:>12}{left}")
    for g in report.get("failures_by_reason", []):
        lines.append(f"  failed  {g['samples']:>7} x {g['reason']} at {g['stage']}"
                     f"{_examples(g)}")
    for g in report.get("warnings_by_reason", []):
        lines.append(f"  warning {g['samples']:>7} x {g['warning']}{_examples(g)}")
    if s["failed"]:
        lines.append(f"  every failed sample, with its reason: {paths.FAILURES}")
    return "\n".join(lines)


def _examples(group: Mapping) -> str:
    names = ", ".join(group["examples"])
    more = ", ..." if group["samples"] > len(group["examples"]) else ""
    return f"  (e.g. {names}{more})" if names else ""
