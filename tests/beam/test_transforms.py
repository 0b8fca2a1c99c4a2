"""Beam adapters: ReadRelease, AssignStems, ExportSamples (main and failure outputs),
WriteCocoDocument."""

import json
import os

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.testing.util import assert_that, equal_to

from benchmarks import synth
from transforms import AssignStems, ExportSamples, ReadRelease, WriteCocoDocument, release
from transforms.export import ExportJob, _ExportSampleFn
from transforms.formats import coco
from transforms.formats.sample_export import ExportSettings
from transforms.model.taxonomy import Taxonomy
from transforms.model.types import Sample
from transforms.state import incremental
from transforms.storage import pickles


def _info(path, selection=release.Selection()):
    with open(path, "rb") as f:
        return release.release_info(release.scan_header(f), selection)


def _release(tmp_path, entries):
    return synth.write_release(str(tmp_path), entries)


def test_read_release_indexes_selected_samples_in_file_order(pipeline, tmp_path):
    entries = [
        synth.sample_entry("a.jpg", "ua", "i", "b", [], status="LABELED"),
        synth.sample_entry("b.jpg", "ub", "i", "b", [], status="REVIEWED"),
        synth.sample_entry("c.jpg", "uc", "i", "b", None),
        synth.sample_entry("d.jpg", "ud", "i", "b", [], status="LABELED"),
    ]
    path = _release(tmp_path, entries)
    sel = release.Selection(filter_by=("LABELED", "UNLABELED"))
    with pipeline as p:
        out = p | ReadRelease(path, _info(path, sel), sel)
        assert_that(out.samples | beam.Map(lambda s: (s.name, s.index, s.position)),
                    equal_to([("a.jpg", 0, 0), ("d.jpg", 2, 3)]), label="Samples")
        assert_that(out.rows | beam.Map(lambda r: (r.name, r.status, r.image_id)),
                    equal_to([("b.jpg", "skipped", None), ("c.jpg", "skipped", 2)]), label="Rows")


def test_read_release_reports_malformed_samples(pipeline, tmp_path):
    bad_ann = synth.sample_entry("bad.jpg", "u1", "i", "b", [{"id": "x", "category_id": 1}])
    path = _release(tmp_path, [bad_ann, 42, synth.sample_entry("ok.jpg", "u2", "i", "b", [])])
    with pipeline as p:
        out = p | ReadRelease(path, _info(path), release.Selection())
        assert_that(out.rows | beam.Map(lambda r: (r.position, r.status, r.reason.split(":")[0])),
                    equal_to([(0, "failed", "labels.ground-truth.attributes.annotations[0].id"),
                              (1, "failed", "sample")]), label="Rows")
        assert_that(out.samples | beam.Map(lambda s: (s.name, s.index)), equal_to([("ok.jpg", 1)]),
                    label="Samples")


def _s(index, name):
    return Sample(index, index, f"u{index}", name, None, "LABELED", (), None)


def test_assign_stems_resolves_collisions_deterministically(pipeline):
    samples = [_s(0, "a.jpg"), _s(1, "a.png"), _s(2, "A.jpg"), _s(3, "a__2.jpg"), _s(4, "dir/b.jpg"),
               _s(5, "../../etc/passwd")]
    with pipeline as p:
        stems = p | beam.Create(samples) | AssignStems() | beam.Map(lambda s: (s.index, s.stem))
        assert_that(stems, equal_to([(0, "a"), (1, "a__2_2"), (2, "A__3"), (3, "a__2"), (4, "dir/b"),
                                     (5, "etc/passwd")]))


def _job(tmp_path, release_uri, formats=("coco-instance", "instance")):
    tax = Taxonomy(release.parse_categories(synth.CATEGORIES, "c"))
    return ExportJob(release_uri=release_uri, output=str(tmp_path / "out"),
                     settings=ExportSettings(formats=formats, labelset="ground-truth", taxonomy=tax),
                     copy_images=False)


def test_export_dofn_writes_files_and_reports_failures_directly(tmp_path):
    id_map = np.zeros((4, 5), np.uint32)
    id_map[1:3, 1:4] = 1
    (tmp_path / "good.png").write_bytes(synth.id_map_to_png(id_map))
    (tmp_path / "bad.png").write_bytes(b"nope")
    fn = _ExportSampleFn(_job(tmp_path, str(tmp_path / "release.json")))
    fn.setup()
    from transforms.model.types import Annotation
    good = Sample(0, 0, "u0", "good.jpg", None, "LABELED", (Annotation(1, 1),), "good.png", stem="good")
    bad = Sample(1, 1, "u1", "bad.jpg", None, "LABELED", (Annotation(1, 1),), "bad.png", stem="bad")
    out_good = list(fn.process(good))
    out_bad = list(fn.process(bad))
    fn.teardown()
    tagged = {o.tag: o.value for o in out_good if isinstance(o, pvalue.TaggedOutput)}
    (part,) = [o for o in out_good if not isinstance(o, pvalue.TaggedOutput)]
    row = tagged["rows"]
    assert part[0] == 0 and len(part[2]) == 1 and row.status == "exported"
    assert tagged["preview"][:2] == (0, "good.jpg")  # index 0 is among the previewed samples
    assert os.path.exists(tmp_path / "out" / "instance" / "good_label_ground-truth_instance.png")
    # The ledger entry carries the same row, COCO part and thumbnail (for --only_failed).
    position, status, packed, key = tagged["ledger"]
    assert (position, status) == (0, "exported")
    assert key == incremental.sample_key(good)  # what --since matches the next release with
    assert _same_entry(pickles.unpack(packed), (row, part, tagged["preview"]))
    bad_tagged = {o.tag: o.value for o in out_bad}
    assert set(bad_tagged) == {"rows", "ledger"}  # no COCO part, no thumbnail
    assert bad_tagged["rows"].status == "failed" and bad_tagged["rows"].stage == "decode"
    assert pickles.unpack(bad_tagged["ledger"][2]) == (bad_tagged["rows"], None, None)
    assert bad_tagged["ledger"][3] is None  # a failed sample is never reused


def _same_entry(a, b) -> bool:
    """Ledger entries compare field by field (thumbnails are numpy arrays)."""
    (row_a, part_a, (i_a, n_a, t_a)), (row_b, part_b, (i_b, n_b, t_b)) = a, b
    return (row_a, part_a, i_a, n_a) == (row_b, part_b, i_b, n_b) and np.array_equal(t_a, t_b)


def test_export_samples_main_and_failed_outputs(pipeline, tmp_path):
    id_map = np.ones((3, 3), np.uint32)
    (tmp_path / "good.png").write_bytes(synth.id_map_to_png(id_map))
    from transforms.model.types import Annotation
    good = Sample(0, 0, "u0", "good.jpg", None, "LABELED", (Annotation(1, 2),), "good.png", stem="good")
    missing = Sample(1, 1, "u1", "m.jpg", None, "LABELED", (Annotation(1, 2),), "missing.png", stem="m")
    with pipeline as p:
        out = p | beam.Create([good, missing]) | ExportSamples(_job(tmp_path, str(tmp_path / "r.json")))
        assert_that(out.parts | beam.Map(lambda part: (part[0], len(part[2]))), equal_to([(0, 1)]),
                    label="Parts")
        assert_that(out.rows | beam.Map(lambda r: (r.name, r.status, r.stage)),
                    equal_to([("good.jpg", "exported", None), ("m.jpg", "failed", "fetch")]),
                    label="Rows")


def test_write_coco_document_assigns_dense_ids_across_shards(pipeline, tmp_path):
    parts = [coco.pack_part(i, json.dumps({"id": i + 1}),
                            [json.dumps({"image_id": i + 1}) for _ in range(i % 3)])
             for i in range(9)]
    path = str(tmp_path / "doc.json")
    with pipeline as p:
        _ = p | beam.Create(parts) | WriteCocoDocument(path, {"info": {}, "categories": []},
                                                         str(tmp_path / "tmp"), assign_ids=True,
                                                         shard_size=2)
    doc = json.loads(open(path).read())
    assert [im["id"] for im in doc["images"]] == list(range(1, 10))
    assert [a["id"] for a in doc["annotations"]] == list(range(1, 10))
    assert [a["image_id"] for a in doc["annotations"]] == [2, 3, 3, 5, 6, 6, 8, 9, 9]
    # Fragments stay until the launcher ends the run, so a retried Concatenate finds them
    # (the end-to-end tests check that a finished run leaves no temporary file).
    assert sorted(os.listdir(tmp_path / "tmp")) == [
        f"{kind}-{shard:09d}.json" for kind in ("annotations", "images") for shard in range(5)]
