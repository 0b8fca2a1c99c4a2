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

import os
import subprocess
import sys

import pytest

from benchmarks import synth
from pipeline.run import run
from tests.conftest import tree
from tests.faultserver import TRANSIENT, FaultServer
from transforms.formats import errors, paths, storage

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
# Release-bad's broken samples: name -> (bitmap path, image path, stage, words in the reason)
BROKEN = {
    "gone.jpg": ("/labels/gone.png", "/images/sample_00000.jpg", "fetch", "bitmap: HTTP 404"),
    "forbidden.jpg": ("/labels/forbidden.png", "/images/sample_00001.jpg", "fetch",
                      "bitmap: HTTP 403"),
    "garbage.jpg": ("/labels/garbage.png", "/images/sample_00002.jpg", "decode", "PNG"),
    "html.jpg": ("/labels/html.png", "/images/sample_00003.jpg", "decode", ""),
    "noimage.jpg": ("/labels/sample_00004.png", "/images/gone.jpg", "fetch", "image: HTTP 404"),
}
PERMANENT_FAULTS = {"/labels/forbidden.png": "403", "/labels/garbage.png": "garbage",
                    "/labels/html.png": "html"}  # gone.png and images/gone.jpg do not exist


class Site:
    """The module's release folder, served by one fault server (one port for the module,
    so report.json, which names the release URL, is the same in every run)."""

    def __init__(self, root: str, server: FaultServer):
        self.root, self.server = root, server

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
        good = [synth.sample_entry(t.name, t.uuid, s.url(t.image_file, i), s.url(t.bitmap_file, i + 1),
                                   t.annotations) for i, t in enumerate(truth)]
        skipped = [synth.sample_entry("unlabeled.jpg", "u-unlabeled",
                                      s.url("images/sample_00005.jpg", 0), None, None)]
        _write(root, "release.json", good + skipped)
        broken = [synth.sample_entry(name, f"u-{name}", s.url(image, i), s.url(bitmap, i + 2),
                                     [{"id": 1, "category_id": 1}])
                  for i, (name, (bitmap, image, _, _)) in enumerate(BROKEN.items())]
        _write(root, "release-bad.json", good + skipped + broken)
        yield s


def _write(root: str, name: str, entries: list[dict]) -> None:
    path = synth.write_release(root, entries)
    os.replace(path, os.path.join(root, name))


_REFERENCES: dict[tuple, dict[str, bytes]] = {}


@pytest.fixture
def reference(site, tmp_path_factory):
    """tree of a fault-free in-memory export of `release` with `args` (computed once)."""

    def get(*args: str, release: str = "release.json") -> dict[str, bytes]:
        key = (release, args)
        if key not in _REFERENCES:
            site.server.reset()
            out = tmp_path_factory.mktemp("reference") / "out"
            site.export(out, *IN_MEMORY, *args, release=release)
            assert not site.server.faults()
            _REFERENCES[key] = tree(str(out))
        return _REFERENCES[key]

    return get


def _same_tree(out, expected: dict[str, bytes]) -> None:
    got = tree(str(out))
    assert sorted(got) == sorted(expected)
    assert [p for p in expected if got[p] != expected[p]] == []


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
    with FaultServer(str(tmp_path), script={"/a.png": [kind] * 3}, latency=0.6) as server:
        fetcher = storage.Fetcher(server.url + "release.json", timeout=0.2, attempts=3)
        with pytest.raises(errors.FetchError) as e:
            fetcher.fetch(server.url + f"a.png?X-Amz-Signature={SIGNATURE}", "bitmap")
        fetcher.close()
        assert len(server.requests("/a.png")) == 3
    assert "after 3 attempts" in e.value.reason and SIGNATURE not in e.value.reason


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

