"""Prism (Beam's portable runner in Go, `go install`ed by scripts/cluster.sh), started as a
job server; SDK workers in the launcher (LOOPBACK). Prism holds a job's data in one process,
like the FnApiRunner, so chunked runs apply to it too; --only_failed and --since, which run
several pipelines, run on it as well."""

from __future__ import annotations

import pytest

from tests.engines.conftest import (
    check_counters,
    check_export,
    differences,
    engine_fixture,
)

prism = engine_fixture("prism")


@pytest.mark.timeout(1500)  # the first `up` builds Prism (go install)
def test_prism_writes_the_direct_runners_bytes(site, prism, tmp_path):
    out = tmp_path / "out"
    record = check_export(site, out, site.export(out, *prism.flags))
    assert differences(out, site.reference) == []
    assert record["runner"].startswith("PrismRunner (localhost:")
    check_counters(record)  # Prism reports Beam's counters (committed)


def test_prism_chunked_then_only_failed_then_since(site, prism, tmp_path):
    """Chunks of 5 samples (one pipeline each, then the merge), then --only_failed (the two
    failures fail again) and --since with the same release (nothing to export): the same
    bytes each time."""
    out = tmp_path / "out"
    result = site.export(out, *prism.flags, "--chunk_samples", "5")
    check_export(site, out, result)
    assert "chunks of 5 samples" in result.stderr
    assert differences(out, site.reference) == []

    again = site.export(out, *prism.flags, "--only_failed")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "0 re-exported, 2 failed, 0 skipped" in again.stderr
    assert differences(out, site.reference, updated=True) == []

    since = site.export(out, *prism.flags, "--since", str(out))
    assert since.returncode == 0, since.stderr[-4000:]
    assert "0 re-exported, 2 failed" in since.stderr
    assert differences(out, site.reference, updated=True) == []
