"""Fault injection end to end: a loopback server (tests/faultserver.py) answers the release,
bitmap and image requests of real exports with transient faults (429/5xx, resets, bodies cut
short, timeouts), permanent ones (404, 403, corrupt and HTML bitmaps), and holds a request so
a run can be killed mid-export. Outputs are compared byte for byte with a fault-free run of
the same release from the same server; failures, counts and metrics with what was injected.

Every asset URL is signed (a secret signature and token in the query string), some carry
user:password@ credentials, and the release URL is signed too: none of it may appear in
logs, messages or outputs.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from benchmarks import synth
from pipeline.run import run
from tests.conftest import tree
from tests.faultserver import QUICK, TRANSIENT, FaultServer
from transforms import storage
from transforms.model import errors, paths

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
MULTI = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]

SIGNATURE = "SIGnature0c9e7d1f"
TOKEN = "T0KEN-a83b22e5"
PASSWORD = "pa55w0rd-e41d"
USER = "svc-export-7f3a"
RELEASE_SIGNATURE = "RELsig5b8f20aa"
SECRETS = (SIGNATURE, TOKEN, PASSWORD, USER, RELEASE_SIGNATURE)

GOOD = 16  # samples sample_00000 .. sample_00015, all exportable
ASSETS = ("/images/", "/labels/")
ASSET_PATHS = [f"/{folder}/sample_{i:05d}.{ext}" for i in range(GOOD)
               for folder, ext in (("images", "jpg"), ("labels", "png"))]  # release.json fetches
# Release-bad's broken samples: name -> (bitmap path, image path, stage, words in the reason)
BROKEN = {
    "gone.jpg": ("/labels/gone.png", "/images/sample_00000.jpg", "fetch", "bitmap: HTTP 404"),
    "forbidden.jpg": ("/labels/forbidden.png", "/images/sample_00001.jpg", "fetch",
                      "bitmap: HTTP 403"),
    "garbage.jpg": ("/labels/garbage.png", "/images/sample_00002.jpg", "decode",
                    "bitmap is not an image"),
    "html.jpg": ("/labels/html.png", "/images/sample_00003.jpg", "decode",
                 "bitmap is not an image"),
    "noimage.jpg": ("/labels/sample_00004.png", "/images/gone.jpg", "fetch", "image: HTTP 404"),
}
PERMANENT_FAULTS = {"/labels/forbidden.png": "403", "/labels/garbage.png": "garbage",
                    "/labels/html.png": "html"}  # gone.png and images/gone.jpg do not exist


class Site:
    """The module's release folder, served by one fault server (one port for the module,
    so report.json, which names the release URL, is the same in every run)."""

    def __init__(self, root: str, server: FaultServer):
        self.root, self.server = root, server
        self.reference: dict[str, bytes] | None = None  # see the `reference` fixture

    def url(self, path: str, i: int) -> str:
        """A signed URL for `path`; every third one also carries credentials."""
        base = self.server.url
        if i % 3 == 0:
            base = base.replace("http://", f"http://{USER}:{PASSWORD}@")
        return (f"{base}{path.lstrip('/')}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                f"&X-Amz-Credential=AKIA%2F{USER}&X-Amz-Signature={SIGNATURE}&token={TOKEN}")

    def release(self, name: str = "release.json") -> str:
        return f"{self.server.url}{name}?X-Amz-Signature={RELEASE_SIGNATURE}&X-Amz-Expires=600"

    def export(self, out, *args, release: str = "release.json") -> dict:
        return run(["--release", self.release(release), "--output", str(out), *args])

    def cli(self, out, *args, release: str = "release.json", **kw) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", "--release", self.release(release),
             "--output", str(out), *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("site"))
    truth = synth.make_release(root, samples=GOOD, height=24, width=32, instances=3, seed=11)
    with FaultServer(root) as server:
        s = Site(root, server)
        good = [synth.sample_entry(t.name, t.uuid, s.url(t.image_file, i),
                                   s.url(t.bitmap_file, i + 1), t.annotations)
                for i, t in enumerate(truth)]
        skipped = [synth.sample_entry("unlabeled.jpg", "u-unlabeled",
                                      s.url("images/sample_00005.jpg", 0), None, None)]
        broken = [synth.sample_entry(name, f"u-{name}", s.url(image, i), s.url(bitmap, i + 2),
                                     [{"id": 1, "category_id": 1}])
                  for i, (name, (bitmap, image, _, _)) in enumerate(BROKEN.items())]
        os.replace(synth.write_release(root, good + skipped + broken),
                   os.path.join(root, "release-bad.json"))
        synth.write_release(root, good + skipped)  # release.json
        yield s


@pytest.fixture
def reference(site, tmp_path_factory):
    """() -> tree of a fault-free in-memory export of release.json (made once per module)."""

    def get() -> dict[str, bytes]:
        if site.reference is None:
            site.server.reset()
            out = tmp_path_factory.mktemp("reference") / "out"
            site.export(out, *IN_MEMORY)
            assert not site.server.faults()
            site.reference = tree(str(out))
        return site.reference

    return get


def _same_tree(out, expected: dict[str, bytes]) -> None:
    got = tree(str(out))
    assert sorted(got) == sorted(expected)
    assert [p for p in expected if got[p] != expected[p]] == []


def _metrics(counts: dict) -> tuple[int, int, int]:
    """(exported, failed, skipped) from the run's Beam counters (absent = never incremented)."""
    return tuple(counts.get(f"samples_{k}", 0) for k in ("exported", "failed", "skipped"))


def _leftovers(out) -> list[str]:
    """Temporary files and folders of an export (storage's `.tmp-*~`, paths.TEMP_DIR)."""
    found = []
    for dirpath, dirnames, files in os.walk(out):
        for name in dirnames + files:
            if name.startswith(".tmp") or name == paths.TEMP_DIR:
                found.append(os.path.relpath(os.path.join(dirpath, name), out))
    return found


# --------------------------------------------------------------------------- one fetch


@pytest.mark.parametrize("kind", TRANSIENT)
def test_each_transient_fault_on_a_fetch_is_retried(tmp_path, kind):
    (tmp_path / "a.png").write_bytes(b"0123456789" * 100)
    with FaultServer(str(tmp_path), script={"/a.png": [kind]}, latency=0.6) as server:
        fetcher = storage.Fetcher(server.url + "release.json", timeout=0.2, attempts=2)
        data = fetcher.fetch(server.url + f"a.png?X-Amz-Signature={SIGNATURE}", "bitmap")
        fetcher.close()
        assert data == b"0123456789" * 100
        assert [h.fault for h in server.requests("/a.png")] == [kind, ""]


@pytest.mark.parametrize("kind", ["503", "reset", "truncate", "stall"])
def test_a_transient_fault_outlasting_the_attempts_fails_the_fetch_without_secrets(tmp_path, kind):
    (tmp_path / "a.png").write_bytes(b"x" * 1000)
    with FaultServer(str(tmp_path), script={"/a.png": [kind] * 2}, latency=0.6) as server:
        fetcher = storage.Fetcher(server.url + "release.json", timeout=0.2, attempts=2)
        with pytest.raises(errors.FetchError) as e:
            fetcher.fetch(server.url + f"a.png?X-Amz-Signature={SIGNATURE}", "bitmap")
        fetcher.close()
        assert len(server.requests("/a.png")) == 2
    assert "after 2 attempts" in e.value.reason and SIGNATURE not in e.value.reason


def test_a_release_cut_short_is_resumed_where_it_broke_off(tmp_path):
    body = os.urandom(300_000)
    (tmp_path / "release.json").write_bytes(body)
    script = ["503", "reset", "truncate", "reset-body", "429", "stall", "truncate"]
    with FaultServer(str(tmp_path), script={"/release.json": script}, latency=0.6) as server:
        with storage.open_release(server.url + "release.json?sig=" + SIGNATURE, timeout=0.2,
                                  attempts=3) as stream:
            assert stream.read() == body
        hits = server.requests("/release.json")
    assert [h.fault for h in hits] == script + [""]
    # After the first cut, each request asks for the rest of the file only.
    assert [h.status for h in hits] == [503, None, 200, 206, 429, 206, 206, 206]


# --------------------------------------------------------------------------- whole exports


def test_transient_faults_on_a_fifth_of_asset_requests_change_no_output_byte(site, reference,
                                                                            tmp_path):
    expected = reference()
    # Each kind for certain on one bitmap (429-wait: Retry-After: 1), and 20% of the other
    # asset requests at random, timeouts included (--http_timeout below the server's stall).
    scripted = {f"/labels/sample_{i:05d}.png": [kind] for i, kind in enumerate(TRANSIENT)}
    site.server.reset(seed=3, rate=0.2, kinds=QUICK + ("slow", "stall"), match=ASSETS,
                      latency=1.5, script=scripted)
    out = tmp_path / "out"
    counts = site.export(out, *IN_MEMORY, "--http_timeout", "0.5")
    _same_tree(out, expected)
    assert _metrics(counts) == (GOOD, 0, 1)

    server = site.server
    assert server.served() == server.planned(ASSET_PATHS)  # each fault once, then success
    assert set(server.faults()) == set(TRANSIENT)
    at_random = [h for h in server.hits if h.path.startswith(ASSETS) and h.path not in scripted]
    failed = sum(1 for h in at_random if h.fault)
    assert 0.1 < failed / len(at_random) < 0.3  # this seed: 6 of 28
    # Retry-After: 1 was waited for (server clock), Retry-After: 0 was not.
    waited, again = server.requests(f"/labels/sample_{TRANSIENT.index('429-wait'):05d}.png")
    assert waited.fault == "429-wait" and again.time - waited.time >= 0.95
    quick, again = server.requests(f"/labels/sample_{TRANSIENT.index('429'):05d}.png")
    assert quick.fault == "429" and again.time - quick.time < 0.9


def test_the_release_is_read_through_transient_faults(site, reference, tmp_path):
    expected = reference()
    script = ["503", "reset", "truncate", "429", "reset-body", "stall", "502", "truncate"]
    site.server.reset(script={"/release.json": script}, latency=1.0)
    out = tmp_path / "out"
    counts = site.export(out, *IN_MEMORY)
    _same_tree(out, expected)
    assert counts["samples_exported"] == GOOD
    hits = site.server.requests("/release.json")
    assert [h.fault for h in hits[:len(script)]] == script
    assert [h.fault for h in hits[len(script):]] == [""] * (len(hits) - len(script))
    assert 206 in [h.status for h in hits]  # resumed where the body broke off


def test_permanent_faults_fail_their_samples_once_and_every_count_agrees(site, reference,
                                                                         tmp_path, caplog):
    expected = reference()
    site.server.reset(permanent=PERMANENT_FAULTS)
    out = tmp_path / "out"
    selected = GOOD + 1 + len(BROKEN)
    at_limit = ["--max_failures", str(len(BROKEN)),
                "--max_failure_ratio", f"{len(BROKEN) / selected:.4f}"]  # 5 of 22: 0.2273
    # INFO, as the CLI logs. (At DEBUG, Beam dumps the elements it processes, and a sample
    # holds its URLs to fetch them.)
    with caplog.at_level(logging.INFO):
        counts = site.export(out, *IN_MEMORY, *at_limit, release="release-bad.json")
    assert counts["budget_exceeded"] == ""  # at the limit: exit code 0

    # The failure report: each broken sample, with its stage and a readable reason.
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["name"] for f in failures] == list(BROKEN)
    for f in failures:
        _, _, stage, words = BROKEN[f["name"]]
        assert f["stage"] == stage and words in f["reason"], f
    assert "HTTP 404" in failures[0]["reason"] and "?<redacted>" in failures[0]["reason"]
    # Permanent faults are not retried: one request each.
    for name, (bitmap, image, _, _) in BROKEN.items():
        broken = image if name == "noimage.jpg" else bitmap
        assert len(site.server.requests(broken)) == 1, broken

    # Every count says the same: report, manifest, metrics.
    report = json.loads((out / "report.json").read_text())
    s = report["samples"]
    assert s == {"in_release": selected, "selected": selected,
                 "exported": GOOD, "failed": len(BROKEN), "skipped": 1, "with_warnings": 0}
    assert s["selected"] == s["exported"] + s["failed"] + s["skipped"]
    assert report["failed_by_stage"] == {"decode": 2, "fetch": 3}
    assert report["skipped_by_reason"] == {"no label in this labelset": 1}
    assert _metrics(counts) == (s["exported"], s["failed"], s["skipped"])
    rows = pq.read_table(out / "manifest" / "manifest-00000-of-00001.parquet").to_pylist()
    status = {r["name"]: (r["status"], r["stage"], r["reason"]) for r in rows}
    assert {n for n, (st, _, _) in status.items() if st == "exported"} == {
        f"sample_{i:05d}.jpg" for i in range(GOOD)}
    assert {n: v for n, v in status.items() if v[0] == "failed"} == {
        f["name"]: ("failed", f["stage"], f["reason"]) for f in failures}
    assert status["unlabeled.jpg"][0] == "skipped"

    # Every other sample is exported exactly as without the broken ones.
    got = tree(str(out))
    assert sorted(got) == sorted(expected)
    summaries = ("report.json", paths.FAILURES, "manifest/", paths.STATE_DIR + "/")
    assert [p for p in expected if not p.startswith(summaries) and got[p] != expected[p]] == []

    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    # A failed sample is named once, in the summary and failures.jsonl, not logged while
    # the job runs; whatever is logged holds no secret.
    assert "gone.png" not in logged
    assert [secret for secret in SECRETS if secret in logged] == []

    # One failure over the budget: the run fails (exit 3 in `pipeline.run.main`; the CLI's
    # exit code is checked below) and its outputs are just as complete.
    again = tmp_path / "over-budget"
    counts = site.export(again, *IN_MEMORY, "--max_failures", str(len(BROKEN) - 1),
                         release="release-bad.json")
    assert counts["budget_exceeded"] == "5 samples failed, more than --max_failures 4"
    assert tree(str(again)) == got


def test_no_secret_reaches_logs_messages_or_outputs(site, tmp_path):
    """The CLI (worker processes, INFO logging) on signed URLs with
    credentials: permanent faults, random transient ones, and transient ones that outlast
    the attempts (which fail their samples with the error's name)."""
    exhausted = {"/images/sample_00006.jpg": ["reset"] * 3,
                 "/labels/sample_00007.png": ["truncate"] * 3,
                 "/labels/sample_00008.png": ["503"] * 3}
    site.server.reset(seed=5, rate=0.2, match=ASSETS, permanent=PERMANENT_FAULTS,
                      script=exhausted)
    out = tmp_path / "out"
    failed = len(BROKEN) + len(exhausted)  # 8 of 22 selected samples: 36.4%
    proc = site.cli(out, "--http_attempts", "3", "--max_failures", str(failed),
                    "--max_failure_ratio", "0.36", *MULTI, release="release-bad.json")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr.decode()
    assert (f"failure budget exceeded: {failed} of 22 selected samples failed (36.4%), more "
            "than --max_failure_ratio 0.36") in stderr.decode()
    assert [h for h in site.server.hits if h.fault and h.path not in exhausted]  # at random too

    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    reasons = {f["name"]: f["reason"] for f in failures}
    assert len(reasons) == failed
    assert "ConnectionError after 3 attempts" in reasons["sample_00006.jpg"]
    assert "reading the body after 3 attempts" in reasons["sample_00007.jpg"]
    assert "HTTP 503 after 3 attempts" in reasons["sample_00008.jpg"]
    assert "?<redacted>" in (out / "failures.jsonl").read_text()  # URLs kept, redacted

    texts = {"stdout": stdout, "stderr": stderr}
    for path, data in tree(str(out)).items():
        texts[path] = data
        if path.endswith(".parquet"):  # compressed: check the values too
            texts[path + " (rows)"] = json.dumps(pq.read_table(out / path).to_pylist()).encode()
    leaks = [(where, s) for where, data in texts.items() for s in SECRETS if s.encode() in data]
    assert leaks == []
    assert len(texts) > 2 * GOOD


def test_images_none_keeps_each_image_url_without_its_secrets(site, tmp_path):
    """--images none: COCO's coco_url and the manifest's image_url say where each image is
    (signed release URLs expire: the signature, token and credentials are removed, the rest
    is the asset's address); data.yaml says where the images must go."""
    site.server.reset()
    out = tmp_path / "out"
    site.export(out, *IN_MEMORY, "--images", "none")
    assert not (out / "images").exists()
    doc = json.loads((out / "coco-instance.json").read_text())
    assert [im["coco_url"] for im in doc["images"]] == [
        f"{site.server.url}images/sample_{i:05d}.jpg" for i in range(GOOD)]
    rows = pq.read_table(out / "manifest").to_pylist()
    assert [r["image_url"] for r in rows] == [
        f"{site.server.url}images/sample_{i:05d}.jpg" for i in (*range(GOOD), 5)]
    assert "The images are not in this export (--images none)" in (out / "data.yaml").read_text()
    texts = [data for data in tree(str(out)).values()]
    texts.append(json.dumps(rows).encode())
    assert [s for s in SECRETS for data in texts if s.encode() in data] == []


@pytest.mark.parametrize("mode,nth", [
    (MULTI, 7),
    (IN_MEMORY + ["--chunk_samples", "8"], 10),  # chunk 1 done, chunk 2 half-way
], ids=["multi-processing", "chunked"])
def test_a_run_killed_mid_export_and_started_again_gives_the_same_export(site, reference,
                                                                       tmp_path, mode, nth):
    expected = reference()
    site.server.reset()
    hold = site.server.hold("/labels/", nth=nth)
    out = tmp_path / "out"
    # Its own process group: the CLI and the worker processes it starts die together.
    proc = site.cli(out, *mode, start_new_session=True)
    assert hold.kill_when_reached(proc, f"bitmap number {nth}") == -signal.SIGKILL
    assert not (out / "report.json").exists()  # killed half-way
    done = [p for p in tree(str(out)) if p.startswith("semantic/")]
    assert (8 if "--chunk_samples" in mode else 1) <= len(done) < GOOD
    assert (out / paths.TEMP_DIR).is_dir()

    site.server.reset()
    again = site.cli(out, *mode)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr.decode()
    _same_tree(out, expected)
    assert _leftovers(out) == []


def test_in_memory_and_multi_processing_runs_agree_under_the_same_faults(site, reference,
                                                                         tmp_path):
    """Both runs meet exactly the faults planned from the server's settings (whatever the
    order in which workers fetch) and give the fault-free export, byte for byte."""
    expected = reference()
    served = []
    for name, mode in (("in-memory", IN_MEMORY), ("multi-processing", MULTI)):
        site.server.reset(seed=7, rate=0.2, match=ASSETS)
        out = tmp_path / name
        counts = site.export(out, *mode)
        _same_tree(out, expected)
        assert _metrics(counts) == (GOOD, 0, 1)
        served.append(site.server.served())
    planned = site.server.planned(ASSET_PATHS)
    assert served == [planned, planned] and len(planned) > 3
