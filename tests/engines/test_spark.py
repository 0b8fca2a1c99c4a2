"""Apache Spark 3.5.0 standalone (a master and two workers, separate JVMs) started by
scripts/cluster.sh; SparkRunner with Beam's Spark job server (the Spark driver), SDK workers
from an EXTERNAL worker pool (`python -m pipeline.worker_pool`)."""

from __future__ import annotations

import pytest

from tests.engines.conftest import EXPORTED, check_export, differences, engine_fixture

spark = engine_fixture("spark")


@pytest.mark.timeout(1500)  # the first `up` downloads Spark and the job server's jars
def test_spark_writes_the_direct_runners_bytes(site, spark, tmp_path):
    out = tmp_path / "out"
    record = check_export(site, out, site.export(out, *spark.flags))
    assert differences(out, site.reference) == []
    assert record["runner"].startswith("SparkRunner (spark://127.0.0.1:")
    # Spark reports Beam's counters as attempted values only (failed task attempts
    # included): not exact, which is why the summary's counts come from report.json.
    assert record["counters"]["samples_exported"] >= EXPORTED
