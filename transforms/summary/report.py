"""The run report: small aggregates of every sample's fate, merged in any order.

Contract:
  * `ReportAccumulator` is a combiner: `add(acc, row)`, `merge(accs)`, `finalize(acc, header)`
    give the same result whatever the order or partitioning (tested).
  * It carries only small aggregates: counts per status, per skip reason and per failure
    stage; instances and pixels per category; files and bytes per format; with --split,
    samples exported and failed per split (`splits`, every requested split); the `MAX_LISTED`
    failed samples with the lowest release positions (so the report is deterministic).
  * The report holds no secrets: URLs in reasons are already redacted, the release URL is
    redacted by the caller.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping

from transforms.model.types import EXPORTED, FAILED, SKIPPED, ManifestRow

MAX_LISTED = 50


@dataclasses.dataclass
class Report:
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: dict[str, int] = dataclasses.field(default_factory=dict)
    categories: dict[int, list[int]] = dataclasses.field(default_factory=dict)  # [instances, pixels]
    formats: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # [files, bytes]
    warnings: int = 0
    failures: list[tuple[int, str, str, str]] = dataclasses.field(default_factory=list)
    splits: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # [exported, failed]


def _bump(d: dict, key, by: int = 1) -> None:
    d[key] = d.get(key, 0) + by


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
        elif row.status == EXPORTED:
            for cat, instances, pixels in row.category_stats:
                stats = acc.categories.setdefault(cat, [0, 0])
                stats[0] += instances
                stats[1] += pixels
            for fmt, size in row.file_sizes:
                stats = acc.formats.setdefault(fmt, [0, 0])
                stats[0] += 1
                stats[1] += size
        if row.split is not None and row.status in (EXPORTED, FAILED):
            acc.splits.setdefault(row.split, [0, 0])[row.status == FAILED] += 1
        if row.warnings:
            acc.warnings += 1
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
        return first

    def finalize(self, acc: Report, header: Mapping) -> dict:
        """A JSON-ready dict; `header` holds release and options (already redacted)."""
        names = dict(header.get("category_names", {}))
        exported = acc.statuses.get(EXPORTED, 0)
        failed = acc.statuses.get(FAILED, 0)
        skipped = acc.statuses.get(SKIPPED, 0)
        filtered = sum(n for r, n in acc.skipped.items() if r.startswith("filtered out"))
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
            "formats": {fmt: {"files": s[0], "bytes": s[1]} for fmt, s in sorted(acc.formats.items())},
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


def report_bytes(report: Mapping) -> bytes:
    """report.json's bytes (sorted keys, so the file depends only on the report)."""
    return (json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def format_table(report: Mapping) -> str:
    """The run report as a few readable lines for the terminal."""
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
            lines.append(f"  {fmt:22s} {f['files']:>11} {f['bytes']:>12}")
    for f in report["failures"]:
        lines.append(f"  FAILED #{f['position']} {f['name']} [{f['stage']}]: {f['reason']}")
    if s["failed"] > len(report["failures"]):
        lines.append(f"  ... {s['failed'] - len(report['failures'])} more failures in failures.jsonl")
    return "\n".join(lines)
