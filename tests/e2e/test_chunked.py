"""Chunked runs (--chunk_samples): the same export, byte for byte, as one pipeline.

The release mixes everything a chunk boundary could break: names that collide across chunks
(case-insensitive, with a literal name equal to a generated suffix, folder separators),
failures and skipped samples in several chunks, COCO and manifest shards that straddle chunk
boundaries, and annotation ids that continue from chunk to chunk.
"""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from benchmarks import synth
from pipeline.run import run
from tests.conftest import tree

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]

# Position -> name; others keep synth's sample_{i}.jpg. Position 9 collides with 0 ("a.jpg")
# and would get "a__10", which position 5 holds literally, so it becomes "a__10_2".
NAMES = {0: "a.jpg", 5: "a__10.jpg", 9: "a.jpg", 13: "A.png", 2: "dir/x.jpg", 15: "dir\\x.jpg"}
FAILING = (3, 11)  # bitmap 404
UNLABELED = (7, 16)  # skipped: no label


@pytest.fixture
def release(http_root):
    root, url = http_root
    truth = synth.make_release(root, samples=18, height=24, width=32, instances=4, seed=3,
                               base_url=url)
    entries = []
    for i, t in enumerate(truth):
        name = NAMES.get(i, t.name)
        bitmap = url + ("labels/missing.png" if i in FAILING else t.bitmap_file)
        anns = None if i in UNLABELED else t.annotations
        entries.append(synth.sample_entry(name, t.uuid, url + t.image_file, bitmap, anns))
    return synth.write_release(root, entries)


def _export(path, out, *extra):
    return run(["--release", path, "--output", str(out), "--coco_shard_size", "3",
                "--manifest_rows_per_shard", "5", *extra])


def test_chunked_export_is_byte_identical_to_one_pipeline(release, tmp_path):
    one, chunked = tmp_path / "one", tmp_path / "chunked"
    _export(release, one, "--chunk_samples", "0", *IN_MEMORY)
    counts = _export(release, chunked, "--chunk_samples", "4", *IN_MEMORY)
    a, b = tree(str(one)), tree(str(chunked))
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
    # What the comparison covers (so a vacuous pass is impossible): every output kind.
    assert {"coco-instance.json", "coco-panoptic.json", "failures.jsonl", "report.json",
            "preview.png", "data.yaml"} <= set(a)
    assert len([k for k in a if k.startswith("manifest/")]) == 4  # 18 rows, 5 per file
    assert counts["samples_exported"] == 14 and counts["samples_failed"] == 2
    assert counts["samples_skipped"] == 2
    # Names resolved over the whole release, not per chunk.
    stems = {os.path.splitext(os.path.basename(k))[0]
             for k in a if k.startswith(("images/", "images" + os.sep))}
    assert {"a", "a__10", "a__10_2", "A__14"} <= stems
    assert os.path.join("images", "dir", "x__16.jpg") in a
    doc = json.loads(a["coco-instance.json"])
    ids = [ann["id"] for ann in doc["annotations"]]
    assert ids == list(range(1, len(ids) + 1))  # dense and ordered across chunks
    assert [img["id"] for img in doc["images"]] == [i + 1 for i in range(18)
                                                   if i not in FAILING + UNLABELED]
    failures = [json.loads(line) for line in a["failures.jsonl"].decode().splitlines()]
    assert [f["position"] for f in failures] == list(FAILING)
    rows = pq.read_table(str(chunked / "manifest")).to_pylist()
    assert [r["position"] for r in rows] == list(range(18))
    assert not (chunked / ".tmp-export").exists()


def test_chunked_multi_process_run_matches_one_in_memory_pipeline(release, tmp_path):
    one, chunked = tmp_path / "one", tmp_path / "chunked"
    _export(release, one, "--chunk_samples", "0", *IN_MEMORY)
    _export(release, chunked, "--chunk_samples", "7")  # every core, three chunks
    a, b = tree(str(one)), tree(str(chunked))
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []


def test_chunking_applies_to_local_runners_only(release, tmp_path):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="chunk_samples"):
        run(["--release", release, "--output", str(tmp_path / "o"), "--runner", "DataflowRunner",
             "--chunk_samples", "100"])
