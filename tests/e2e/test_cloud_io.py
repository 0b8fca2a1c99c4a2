"""Cloud storage both ways: releases, assets and outputs in gs:// and s3:// buckets.

The buckets are real local stand-ins (tests/cloudservers.py: gcp-storage-emulator and
moto's S3 server on 127.0.0.1), found by the exporter only through the standard variables
(STORAGE_EMULATOR_HOST, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), as in production. Each
export is the real `python -m pipeline` command in a subprocess; its output tree, read back
with the stores' own SDKs, must equal byte for byte the same export written to a local
folder from a local copy of the release (whose artifacts are checked against the drawn
ground truth), except the release's URI in report.json.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from benchmarks import synth
from benchmarks.verify import verify_export
from pipeline.run import run
from tests import cloudservers
from tests.conftest import tree
from transforms import storage

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
SUBSET = "coco-instance,yolo,semantic"
BAD = (2, 5)  # samples whose bitmap is corrupt in the "broken" copies of the release
SAMPLES = 7


@pytest.fixture(scope="module")
def cloud():
    with cloudservers.cloud_env() as env:
        for bucket in ("bkt",):
            env.gcs.create_bucket(bucket)
            env.s3.create_bucket(bucket)
        yield env


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """(folder with release.json and its assets as relative paths, truth, broken folder:
    the same release.json with the bitmaps of BAD not PNGs)."""
    root = str(tmp_path_factory.mktemp("release"))
    truth = synth.make_release(root, samples=SAMPLES, height=20, width=28, instances=3, seed=11)
    broken = str(tmp_path_factory.mktemp("broken"))
    shutil.copytree(root, broken, dirs_exist_ok=True)
    for i in BAD:
        with open(os.path.join(broken, truth[i].bitmap_file), "wb") as f:
            f.write(b"not a png")
    return root, truth, broken


def _local_export(release_json: str, out: str, *extra: str) -> None:
    run(["--release", release_json, "--output", out, *IN_MEMORY, *extra])


@pytest.fixture(scope="module")
def references(release, tmp_path_factory):
    """Local exports of the local release: every format; SUBSET with BAD broken; SUBSET."""
    root, truth, broken = release
    base = tmp_path_factory.mktemp("references")
    refs = {}
    for key, folder, extra in (("all", root, ()), ("subset-broken", broken, ("--formats", SUBSET)),
                               ("subset", root, ("--formats", SUBSET))):
        out = str(base / key)
        _local_export(os.path.join(folder, "release.json"), out, *extra)
        refs[key] = {k.replace(os.sep, "/"): v for k, v in tree(out).items()}
    problems = verify_export(str(base / "all"), truth, synth.CATEGORIES, image_sources=root)
    assert problems == []  # the reference itself is right, pixel for pixel
    return refs


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _same_export(got: dict[str, bytes], want: dict[str, bytes], release_uri: str) -> None:
    """Equal trees; report.json may differ only in the release's (redacted) URI, and
    run.json (this run's wall time and runner; `tests.conftest.tree` leaves it out) is
    only required to be there."""
    got = dict(got)
    if "run.json" in got or "report.json" not in got:
        assert "mode" in json.loads(got.pop("run.json"))
    assert sorted(got) == sorted(want)
    assert [k for k in want if k != "report.json" and got[k] != want[k]] == []
    a, b = json.loads(got["report.json"]), json.loads(want["report.json"])
    assert a["release"].pop("uri") == storage.redact(release_uri)
    b["release"].pop("uri")
    assert a == b


def _without_state(files: dict[str, bytes]) -> tuple[dict[str, bytes], dict]:
    """(the tree without state.json, the ledger generation folder named gen-000000; the
    parsed state.json): what an --only_failed run and a full run can be compared on."""
    state = json.loads(files[".export-state/state.json"])
    rest = {}
    for k, v in files.items():
        parts = k.split("/")
        if parts[0] == ".export-state":
            if parts[1] == "state.json":
                continue
            assert parts[1] == "gen-%06d" % state["generation"]
            k = "/".join([parts[0], "gen-000000", *parts[2:]])
        rest[k] = v
    return rest, state


def _no_secrets(proc: subprocess.CompletedProcess, files: dict[str, bytes],
                *secrets: str) -> None:
    for secret in (cloudservers.ACCESS_KEY_ID, cloudservers.SECRET_ACCESS_KEY, *secrets):
        assert secret not in proc.stdout and secret not in proc.stderr
        assert [k for k, v in files.items() if secret.encode() in v] == []


# --------------------------------------------------------------------------- the stand-ins


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_storage_helpers_on_the_stand_in(cloud, scheme):
    """What the export relies on, through the exporter's own storage functions: large
    uploads (GCS resumable, S3 multipart), a failed streamed write leaves no object, folder
    listings ignore placeholder objects and see what another client wrote just before,
    deleting a folder spares its namesakes (`images-x`, `images2`)."""
    import fsspec

    base = f"{scheme}://bkt/helpers"
    big = os.urandom(6 * 2**20 + 123)  # over gcsfs' 5 MiB block: a resumable upload
    with storage.open_atomic(f"{base}/big.bin") as f:
        for i in range(0, len(big), 2**20):
            f.write(big[i:i + 2**20])
    assert cloud.tree(base) == {"big.bin": big}
    if scheme == "s3":  # s3fs' streamed writes: a multipart upload past the block size
        fs = fsspec.filesystem("s3")
        with fs.open("bkt/helpers/multi.bin", "wb", block_size=5 * 2**20) as f:
            f.write(big)
        assert storage.read_bytes(f"{base}/multi.bin") == big
        cloud.s3.delete("bkt/helpers/multi.bin")

    with pytest.raises(RuntimeError):
        with storage.open_atomic(f"{base}/broken.json") as f:
            f.write(b"{half a document")
            raise RuntimeError("writer failed")
    assert sorted(cloud.tree(base)) == ["big.bin"]

    store = cloud.store(scheme)
    for key in ("out/", "out/images/", "out/images/a.jpg", "out/images/d/e.jpg",
                "out/images-x/b.jpg", "out/images2", "out/report.json"):
        store.put(f"bkt/helpers/{key}", b"1")
    out = f"{base}/out"
    assert storage.list_names(out) == ["images2", "report.json"]
    assert storage.check_output(out, ("images", "report.json")) == ["images", "report.json"]
    store.put("bkt/helpers/out/late.txt", b"2")  # behind the back of any listing cache
    assert storage.list_names(out) == ["images2", "late.txt", "report.json"]
    storage.remove_tree(f"{out}/images")
    storage.remove_tree(f"{out}/late.txt")
    assert sorted(cloud.tree(out)) == ["", "images-x/b.jpg", "images2", "report.json"]
    assert storage.list_names(f"{out}/images") == [] and storage.walk_files(f"{out}/nothing") == []
    with pytest.raises(ValueError, match="holds no previous export"):
        storage.check_output(out, ("images",))
    store.delete("bkt/helpers/out/")  # a placeholder alone is an empty folder
    for key in cloud.tree(out):
        store.delete(f"bkt/helpers/out/{key}")
    store.put("bkt/helpers/out/", b"")
    assert storage.check_output(out, ("images",)) == []


def test_relative_asset_urls_stay_in_the_bucket():
    assert storage.resolve("labels/a.png", "gs://b/r/release.json") == "gs://b/r/labels/a.png"
    assert storage.resolve("../x/a.png", "s3://b/r/s/release.json") == "s3://b/r/x/a.png"
    assert storage.resolve("../../../a.png", "s3://b/r/release.json") == "s3://b/a.png"
    assert storage.resolve("s3://o/a.png", "gs://b/r/release.json") == "s3://o/a.png"


# --------------------------------------------------------------------------- exports


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_bucket_to_bucket_export_rerun_chunked_and_only_failed(cloud, release, references,
                                                              scheme):
    """Release and assets in the bucket (relative URLs), output to the bucket:
    1. every format, multi-process workers, --validate on the bucket: equal to the local
       export; no credential anywhere;
    2. a rerun into the same prefix, chunked, fewer formats, two bitmaps broken in the
       bucket: exactly the local export of that (nothing left of run 1);
    3. the bitmaps fixed, --only_failed on the bucket: the faultless export."""
    root, truth, broken = release
    src, out = f"{scheme}://bkt/{scheme}-release", f"{scheme}://bkt/{scheme}-out"
    cloud.upload_dir(root, src)
    release_uri = f"{src}/release.json"

    proc = _cli(cloud.variables, "--release", release_uri, "--output", out, "--validate",
                "--direct_num_workers", "2")
    got = cloud.tree(out)
    _same_export(got, references["all"], release_uri)
    assert "coco-instance   ok" in proc.stdout and "FAILED" not in proc.stdout
    _no_secrets(proc, got)

    store = cloud.store(scheme)
    for i in BAD:
        store.put(f"bkt/{scheme}-release/{truth[i].bitmap_file}", b"not a png")
    proc = _cli(cloud.variables, "--release", release_uri, "--output", out, "--formats", SUBSET,
                "--chunk_samples", "3", *IN_MEMORY)
    _same_export(cloud.tree(out), references["subset-broken"], release_uri)
    assert "3 chunks" in proc.stderr

    cloud.upload_dir(root, src)  # the broken bitmaps fixed
    proc = _cli(cloud.variables, "--release", release_uri, "--output", out, "--formats", SUBSET,
                "--only_failed", *IN_MEMORY)
    assert "re-exporting the 2 samples that failed" in proc.stderr
    (got, state), (want, want_state) = map(_without_state, (cloud.tree(out),
                                                            references["subset"]))
    assert (state.pop("generation"), want_state.pop("generation")) == (1, 0)
    assert state == want_state
    _same_export(got, want, release_uri)


def test_local_release_to_s3_and_gcs_release_to_local(cloud, release, references, tmp_path):
    root, _, _ = release
    local_release = os.path.join(root, "release.json")
    _cli(cloud.variables, "--release", local_release, "--output", "s3://bkt/from-local",
         *IN_MEMORY)
    _same_export(cloud.tree("s3://bkt/from-local"), references["all"], local_release)

    cloud.upload_dir(root, "gs://bkt/to-local")
    out = tmp_path / "out"
    _cli(cloud.variables, "--release", "gs://bkt/to-local/release.json", "--output", str(out),
         *IN_MEMORY)
    got = {k.replace(os.sep, "/"): v for k, v in tree(str(out)).items()}
    _same_export(got, references["all"], "gs://bkt/to-local/release.json")
    validated = subprocess.run([sys.executable, "-m", "pipeline.validate", "s3://bkt/from-local"],
                               cwd=ROOT, env=cloud.variables, capture_output=True, text=True,
                               timeout=300)
    assert validated.returncode == 0 and "semantic-color  ok" in validated.stdout


def test_signed_https_release_and_assets_to_gcs(cloud, release, references):
    """A release served by signed URLs (as Segments.ai hands them out), its assets signed
    URLs too, output to GCS: the same export, and no signature or key anywhere."""
    root, truth, _ = release
    cloud.upload_dir(root, "s3://bkt/signed")
    with open(os.path.join(root, "release.json"), encoding="utf-8") as f:
        body = json.load(f)
    for sample in body["dataset"]["samples"]:
        image = sample["attributes"]["image"]
        image["url"] = cloud.s3.presigned(f"bkt/signed/{image['url']}")
        label = sample["labels"]["ground-truth"]
        if label is not None:
            bitmap = label["attributes"]["segmentation_bitmap"]
            bitmap["url"] = cloud.s3.presigned(f"bkt/signed/{bitmap['url']}")
    cloud.s3.put("bkt/signed/signed-release.json", json.dumps(body).encode())
    url = cloud.s3.presigned("bkt/signed/signed-release.json")
    assert "X-Amz-Signature=" in url and url.startswith("http://127.0.0.1:")

    proc = _cli(cloud.variables, "--release", url, "--output", "gs://bkt/signed-out", *IN_MEMORY)
    got = cloud.tree("gs://bkt/signed-out")
    # The release file differs (its URLs), so does its hash in the ledger's state, and so do
    # the ledger's entries (each carries a digest of its sample, asset URLs included, for
    # --since): the ledger is compared for its file names only.
    (rest, state), (want, want_state) = map(_without_state, (got, references["all"]))
    assert state.pop("release_sha256") != want_state.pop("release_sha256")
    assert state == want_state
    ledger = sorted(k for k in want if k.startswith(".export-state/"))
    assert ledger and sorted(k for k in rest if k.startswith(".export-state/")) == ledger
    # The release's absolute asset URLs are kept, unsigned, in COCO's coco_url and the
    # manifest's image_url (the reference's relative paths give no coco_url).
    public = f"{url.split('/bkt/')[0]}/bkt/signed/images/"
    for name in ("coco-instance.json", "coco-panoptic.json"):
        doc = json.loads(rest[name])
        assert [im.pop("coco_url") for im in doc["images"]] == [
            public + im["file_name"] for im in doc["images"]]
        assert doc == json.loads(want[name])
    rows, want_rows = (pq.read_table(io.BytesIO(t["manifest/manifest-00000-of-00001.parquet"]))
                       .to_pylist() for t in (rest, want))
    assert [r.pop("image_url") for r in rows] == [
        public + os.path.basename(r["image_url"]) for r in want_rows]
    assert rows == [{k: v for k, v in r.items() if k != "image_url"} for r in want_rows]
    urls = ("coco-instance.json", "coco-panoptic.json", "manifest/manifest-00000-of-00001.parquet")
    _same_export({k: v for k, v in rest.items() if k not in ledger and k not in urls},
                 {k: v for k, v in want.items() if k not in ledger and k not in urls}, url)
    signature = url.split("X-Amz-Signature=")[1].split("&")[0]
    _no_secrets(proc, got, signature, "X-Amz-Credential")
