"""Real engines on this machine: one release with faults, exported on the DirectRunner once
(the reference) and on each engine, started and stopped by `scripts/cluster.sh`.

Each test module starts its engine in a module-scoped fixture (`cluster`) and stops it by
the PIDs `cluster.sh up` recorded, even when a test fails, so only one engine runs at a
time. `cluster.sh up` installs what the engine needs on first use (PyPI, Maven Central,
the Go module proxy; cached afterwards); the tests themselves use loopback only: the
release, its assets and the engines are all on 127.0.0.1.

The release (`site`): 8 good samples (small pictures, a few instances each), names that
collide (`Coins.jpg`, `coins.jpg` twice), an unlabeled and a SKIPPED sample, a bitmap that
answers 404 and one that is not a PNG, and transient faults (500, reset, 503) scripted on
three assets, which every run must retry as the DirectRunner does. It is exported with
every format of a segmentation release, yolo-seg included, split train/val/test, with
hf-parquet and webdataset shards of 10 KB (several shards per split).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest

from benchmarks import synth
from tests.conftest import tree
from tests.faultserver import FaultServer
from transforms.model import paths

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "scripts", "cluster.sh")
ARGS = ["--formats", "coco-instance,coco-panoptic,yolo,yolo-seg,instance,semantic,"
        "instance-color,semantic-color,hf-parquet,webdataset",
        "--split", "train=0.6,val=0.2,test=0.2", "--shard_mb", "0.01"]
GOOD = 8
# Transient faults, retried; permanent ones fail their sample (gone.png does not exist: 404).
SCRIPT = {"/labels/sample_00003.png": ["500", "reset"], "/images/sample_00004.jpg": ["503"],
          "/labels/sample_00006.png": ["reset"]}
PERMANENT = {"/labels/garbage.png": "garbage"}
EXPORTED, FAILED, SKIPPED = GOOD + 3, 2, 2


class Site:
    """The release on a fault server (one port for the session: report.json names the
    release URL, so every export must read it from the same address)."""

    def __init__(self, root: str, server: FaultServer):
        self.root, self.server = root, server
        self.reference: dict[str, bytes] = {}

    @property
    def release(self) -> str:
        return self.server.url + "release.json"

    def reset(self) -> None:
        """Scripted faults armed again (attempts count from 0), requests forgotten."""
        self.server.reset(script=SCRIPT, permanent=PERMANENT)

    def command(self, out, *flags: str) -> list[str]:
        return [sys.executable, "-m", "pipeline", "--release", self.release,
                "--output", str(out), *ARGS, *flags]

    def export(self, out, *flags: str) -> subprocess.CompletedProcess:
        self.reset()
        return subprocess.run(self.command(out, *flags), cwd=ROOT, capture_output=True,
                              text=True, timeout=1200, check=False)


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("engine-release"))
    truth = synth.make_release(root, samples=GOOD, height=24, width=32, instances=3, seed=5)
    with FaultServer(root) as server:
        s = Site(root, server)
        url = server.url
        entries = [synth.sample_entry(t.name, t.uuid, url + t.image_file, url + t.bitmap_file,
                                      t.annotations) for t in truth]
        for i, name in enumerate(("Coins.jpg", "coins.jpg", "coins.jpg")):  # collisions
            t = truth[i]
            entries.append(synth.sample_entry(name, f"u-coins-{i}", url + t.image_file,
                                              url + t.bitmap_file, t.annotations))
        image = url + truth[7].image_file
        entries += [
            synth.sample_entry("unlabeled.jpg", "u-unlabeled", image, None, None),
            skipped_sample(image),
            synth.sample_entry("gone.jpg", "u-gone", image, url + "labels/gone.png",
                               [{"id": 1, "category_id": 1}]),
            synth.sample_entry("garbage.jpg", "u-garbage", image, url + "labels/garbage.png",
                               [{"id": 1, "category_id": 1}]),
        ]
        synth.write_release(root, entries)
        # The reference: the default runner (DirectRunner), made once.
        out = os.path.join(str(tmp_path_factory.mktemp("reference")), "out")
        done = s.export(out)
        assert done.returncode == 0, done.stderr
        s.reference = tree(out)
        check_export(s, out, done)
        yield s


def skipped_sample(image_url: str) -> dict:
    """A sample whose labeler skipped it (status SKIPPED, no label attributes)."""
    entry = synth.sample_entry("skipped.jpg", "u-skipped", image_url, None, [])
    entry["labels"]["ground-truth"].update(label_status="SKIPPED", attributes=None)
    return entry


def check_export(site: Site, out, result: subprocess.CompletedProcess) -> dict:
    """What every run must show besides its files: exit 0, the counts (in the summary line,
    from report.json), every scripted transient fault met and retried, no temporary file
    left, the export marked complete. Returns run.json."""
    assert result.returncode == 0, result.stderr[-4000:]
    assert (f"{EXPORTED} exported, {FAILED} failed, {SKIPPED} skipped") in result.stderr
    served = set(site.server.served())
    for path, kinds in SCRIPT.items():
        assert {(path, i, k) for i, k in enumerate(kinds)} <= served, path
    assert leftovers(out) == []
    assert os.path.isfile(os.path.join(out, paths.STATE_DIR, "state.json"))
    with open(os.path.join(out, paths.RUN), encoding="utf-8") as f:
        return json.load(f)


def leftovers(out) -> list[str]:
    """Temporary files and folders of an export (storage's `.tmp-*~`, the temp folder)."""
    found = []
    for dirpath, dirnames, files in os.walk(out):
        for name in dirnames + files:
            if name.startswith(".tmp"):
                found.append(os.path.relpath(os.path.join(dirpath, name), out))
    return found


def differences(out, reference: dict[str, bytes], updated: bool = False) -> list[str]:
    """Paths whose sha256 differs from the reference's, or that only one tree has.
    `updated`: `out` was updated in place (--only_failed, --since), which moves the ledger
    to a new generation: state.json and the generation folder's name are left out."""

    def digests(files: dict[str, bytes]) -> dict[str, str]:
        out = {}
        for rel, data in files.items():
            parts = rel.split(os.sep)
            if updated and parts[0] == paths.STATE_DIR:
                if parts[-1] == "state.json":
                    continue
                rel = os.path.join(parts[0], parts[-1])  # gen-00000N/ledger-... -> ledger-...
            out[rel] = hashlib.sha256(data).hexdigest()
        return out

    got, want = digests(tree(str(out))), digests(reference)
    return sorted(p for p in set(got) | set(want) if got.get(p) != want.get(p))


def free_ports(n: int = 1) -> int:
    """A port p with p .. p+n-1 free on 127.0.0.1 (as far as one can tell)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for p in range(base, base + n):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


_PORTS = {"flink": ("FLINK_REST_PORT", "FLINK_RPC_PORT", "FLINK_WORKER_POOL_PORT"),
          "spark": ("SPARK_MASTER_PORT", "SPARK_UI_PORT", "SPARK_WORKER_POOL_PORT"),
          "prism": ()}


@dataclasses.dataclass
class Engine:
    name: str
    flags: list[str]
    env: dict[str, str]
    state: str

    def pids(self) -> dict[str, int]:
        """{process name: pid} of what `cluster.sh up` started."""
        with open(os.path.join(self.state, "pids"), encoding="utf-8") as f:
            return {name: int(pid) for name, pid, _ in (line.split() for line in f)}


@contextlib.contextmanager
def cluster(name: str, state: str):
    """`cluster.sh NAME up` on free ports, this interpreter as the workers' Python; `down`
    afterwards whatever happens."""
    env = dict(os.environ, BEAM_PYTHON=sys.executable, SEGEXPORT_ENGINES_STATE=state)
    for var in _PORTS[name]:
        env[var] = str(free_ports())
    if name == "spark":
        env["SPARK_WORKER_UI_PORT"] = str(free_ports(3))
    if name == "prism":
        env["PRISM_JOB_PORT"] = str(free_ports(2))
    try:
        up = subprocess.run(["bash", CLUSTER, name, "up"], env=env, capture_output=True,
                            text=True, timeout=1500, check=False)
        assert up.returncode == 0, up.stderr
        yield Engine(name, up.stdout.strip().splitlines()[-1].split(), env,
                     os.path.join(state, name))
    finally:
        subprocess.run(["bash", CLUSTER, name, "down"], env=env, capture_output=True,
                       timeout=300, check=False)


def engine_fixture(name: str):
    """A module-scoped fixture: the engine `name` up for the module's tests, down after."""

    @pytest.fixture(scope="module")
    def engine(tmp_path_factory):
        with cluster(name, str(tmp_path_factory.mktemp("state"))) as started:
            yield started

    return engine


def check_counters(record: dict) -> None:
    """Beam's counters as a runner that reports committed values (Flink, Prism) gives
    them in run.json: the same numbers as the report."""
    counters = record["counters"]
    assert (counters["samples_exported"], counters["samples_failed"],
            counters["samples_skipped"]) == (EXPORTED, FAILED, SKIPPED)
