"""Graph shapes the engines refuse, checked on every graph the export builds.

Flink and Spark reject at submission a PCollection consumed both by a Flatten and by a
GroupByKey (apache/beam#34647: "A PCollectionNode should have exactly one producing
PTransformNode"), while the FnApiRunner and Prism, on which most tests run, accept it. So a
change introducing the shape would pass every local test and fail on a cluster: this test
looks for it in the graphs themselves (a full export with every format and splits, with its
first and last steps; one chunk of a chunked run; --only_failed's chunk; the merge).
"""

from __future__ import annotations

import collections

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import graph
from pipeline.prepare import prepare
from transforms import storage
from transforms.model import paths
from transforms.state import chunking, ledger

FLATTEN = "beam:transform:flatten:v1"
GROUP_BY_KEY = "beam:transform:group_by_key:v1"
EVERY_FORMAT = ("coco-instance,coco-panoptic,yolo,yolo-seg,instance,semantic,instance-color,"
                "semantic-color,hf-parquet,webdataset")


def _flatten_and_group(pipeline: beam.Pipeline) -> list[str]:
    """PCollections consumed by both a Flatten and a GroupByKey (leaf transforms only)."""
    proto = pipeline.to_runner_api()
    consumers = collections.defaultdict(set)
    for t in proto.components.transforms.values():
        if t.subtransforms:
            continue
        for pcoll in t.inputs.values():
            consumers[pcoll].add(t.spec.urn)
    return sorted(p for p, urns in consumers.items() if {FLATTEN, GROUP_BY_KEY} <= urns)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shapes") / "out")
    options, cfg, info, formats, _, fp = prepare(
        ["--output", out, "--formats", EVERY_FORMAT, "--split", "train=0.5,val=0.25,test=0.25"])
    return cfg, info, formats, fp


def _pipeline() -> beam.Pipeline:
    return beam.Pipeline(runner="FnApiRunner", options=PipelineOptions([]))


def test_the_full_export_graph_has_no_shape_flink_and_spark_refuse(prepared):
    cfg, info, formats, fp = prepared
    p = _pipeline()
    outputs = graph.build(p, cfg, info, formats, token="t", fp=fp)
    assert "finish" in outputs and "from_ledger" in outputs
    assert _flatten_and_group(p) == []


def test_chunk_and_merge_graphs_have_no_shape_flink_and_spark_refuse(prepared, tmp_path):
    cfg, info, formats, fp = prepared
    folder = str(tmp_path / "chunks")
    with storage.open_release(cfg.release) as stream:
        chunks = chunking.split(stream, info, cfg.selection, folder, 2)
    c = chunks[0]
    for ledger_only in (False, True):
        p = _pipeline()
        graph.build(p, cfg, info, formats, chunk=graph.ChunkRun(
            c, chunking.stems_path(folder, c.number), {}, ledger_only=ledger_only))
        assert _flatten_and_group(p) == []
    p = _pipeline()
    generation = ledger.generation_dir(cfg.output, 0)
    taxonomy = graph.taxonomy_for(cfg, info)
    rebuild = ledger.Rebuild(cfg.output, generation, info.sample_count, 100,
                             graph.coco_headers(info, taxonomy, formats),
                             graph.report_header(cfg, info, formats), taxonomy,
                             splits=True)
    graph.build_merge(p, rebuild, graph.ledger_outputs(cfg, info, formats, generation),
                      output=cfg.output, generation=0, fp=fp)
    assert _flatten_and_group(p) == []


def test_the_check_finds_the_shape():
    p = _pipeline()
    pairs = p | beam.Create([(1, 2)])
    _ = (pairs, p | "Other" >> beam.Create([(3, 4)])) | beam.Flatten()
    _ = pairs | beam.GroupByKey()
    assert len(_flatten_and_group(p)) == 1
    assert paths.TEMP_DIR  # (the module under test writes nothing: no output folder exists)
