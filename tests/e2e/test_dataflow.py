"""Dataflow readiness, offline: the job DataflowRunner would get (--dry_run=True builds it,
stages the package built from --setup_file, submits nothing and opens no socket), a template
launch that hands the job over without writing to the output, and the Flex Template's
metadata.json, launcher and Dockerfile kept in step with the code."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
from importlib import metadata as importlib_metadata

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.portability.api import beam_runner_api_pb2

from pipeline import EXAMPLE_RELEASE, config
from pipeline import prepare as prepare_mod
from pipeline import run as run_mod
from pipeline.options import ExportOptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATAFLOW = os.path.join(ROOT, "dataflow")
GCP = ["--runner", "DataflowRunner", "--project", "demo-proj", "--region", "europe-west1",
       # A valid bucket name: with an invalid one Beam tries to create a bucket (BEAM-NOTES §4).
       "--temp_location", "gs://demo-bucket/tmp", "--setup_file", os.path.join(ROOT, "setup.py")]
# The export's steps (pipeline/graph.py) for a segmentation release, every format.
STEPS = {"ReadRelease", "AssignStems", "ExportSamples", "WriteCocoInstance", "WriteCocoPanoptic",
         "WriteYoloDataYaml", "WriteManifest", "WriteFailures", "WriteReport", "WritePreview",
         "WriteLedger"}

# Loaded into every Python process started with PYTHONPATH=<its folder>: records each attempt
# to resolve a name or open a non-Unix socket, and refuses it.
_GUARD = '''
import os, socket, sys
def _note(what):
    with open(os.environ["NET_GUARD_LOG"], "a") as f:
        f.write("%s %s\\n" % (" ".join(sys.argv[:2]), what))
_connect = socket.socket.connect
def connect(self, address):
    if self.family == socket.AF_UNIX:
        return _connect(self, address)
    _note("connect %r" % (address,))
    raise OSError("network access in a test")
def getaddrinfo(host, *args, **kwargs):
    _note("getaddrinfo %r" % (host,))
    raise socket.gaierror("network access in a test")
socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
'''


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(DATAFLOW, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """Every network attempt, in this process and in the processes it starts, is refused and
    listed in the returned log (a refused attempt could be swallowed by a retry loop)."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(_GUARD)
    log = tmp_path / "network.log"
    log.write_text("")
    monkeypatch.setenv("NET_GUARD_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", str(guard))

    def refuse(what):
        with open(log, "a") as f:
            f.write(f"in-process {what}\n")
        raise OSError("network access in a test")

    connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: (
        connect(self, address) if self.family == socket.AF_UNIX else refuse(f"connect {address}")))
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: refuse(f"getaddrinfo {host}"))
    return log


def _artifacts(proto) -> dict[str, str]:
    """{staged name: local file} of every environment's staged files."""
    out = {}
    for env in proto.components.environments.values():
        for dep in env.dependencies:
            role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload)
            path = beam_runner_api_pb2.ArtifactFilePayload.FromString(dep.type_payload).path
            out[role.staged_name] = path
    return out


def test_dry_run_builds_the_dataflow_job_offline(no_network):
    plan = run_mod.run(["--output", "gs://demo-bucket/exports/coins", "--dry_run", *GCP])
    assert (plan["samples"], plan["to_export"]) == (6, 4)  # the plan is printed first
    job = plan["job"]
    assert job.proto.type.name == "JOB_TYPE_BATCH"
    proto = job.proto_pipeline
    transforms = proto.components.transforms.values()
    assert STEPS <= {t.unique_name for t in transforms}
    # AssignStems' GroupByKey spreads the samples over workers (no fusion onto the reader's).
    assert any(t.spec.urn == "beam:transform:group_by_key:v1"
               and t.unique_name.startswith("AssignStems/") for t in transforms)

    # The worker container follows the submitting Python and Beam versions.
    (env,) = proto.components.environments.values()
    image = beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image
    python = "{}.{}".format(*sys.version_info[:2])
    assert image == f"gcr.io/cloud-dataflow/v1beta3/beam_python{python}_sdk:{beam.__version__}"
    options = job.options.get_all_options()
    assert (options["project"], options["region"]) == ("demo-proj", "europe-west1")
    assert "use_runner_v2" in options["experiments"]

    # --setup_file: the sdist every worker pip-installs holds both packages and the example.
    staged = _artifacts(proto)
    with tarfile.open(staged["workflow.tar.gz"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
        pkg_info = sdist.extractfile(next(n for n in sdist.getnames()
                                          if n.endswith("/PKG-INFO") and n.count("/") == 1))
        version = re.search(r"^Version: (.+)$", pkg_info.read().decode(), re.MULTILINE).group(1)
    assert {"setup.py", "pipeline/run.py", "pipeline/worker.py", "transforms/export.py",
            "transforms/release/decisions.py", "pipeline/example/release.json",
            "pipeline/example/labels/coins_01.png"} <= names
    assert version == importlib_metadata.version("segments-beam-export")
    assert no_network.read_text() == ""  # nothing submitted, staged, read or written remotely


def test_template_launch_hands_over_a_job_that_finishes_the_export(tmp_path, no_network,
                                                                   monkeypatch):
    """A Flex Template's launcher runs the program with --template_location: the job starts
    after the program exits and nothing waits for it. So the launcher must not touch the
    output, and the job itself must do what a waiting launcher would: replace the previous
    export first, and last (after every write) remove the temporary folder and write the
    ledger's state.json. Dataflow's client (the one networked part) is replaced by a fake;
    the graph handed over is then run on the local runner, with no launcher around it: the
    folder it leaves is the command line's export, state.json included."""
    from apache_beam.runners.dataflow.internal import apiclient
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from pipeline import graph
    from tests.conftest import tree

    handed, built = [], []

    class FakeClient:
        def __init__(self, options, root_staging_location=None):
            pass

        def create_job(self, job):
            location = job.options.get_all_options()["template_location"]
            with open(location, "w") as f:
                f.write(job.json())
            handed.append(job)

    build = graph.build

    def recording_build(root, *args, **kwargs):
        built.append((args, kwargs))
        return build(root, *args, **kwargs)

    monkeypatch.setattr(apiclient, "DataflowApplicationClient", FakeClient)
    monkeypatch.setattr(graph, "build", recording_build)
    # Validating the options asks GCS about the bucket's soft-delete policy (not in dry runs).
    monkeypatch.setattr(GoogleCloudOptions, "_warn_if_soft_delete_policy_enabled",
                        lambda self, arg_name: None)
    out = tmp_path / "out"
    argv = ["--output", str(out), "--template_location", str(tmp_path / "job.json"), *GCP]
    result = run_mod.run(argv)
    assert [result["job"]] == handed
    names = {t.unique_name for t in handed[0].proto_pipeline.components.transforms.values()}
    assert STEPS | {"BeginExport", "FinishExport"} <= names
    assert json.loads((tmp_path / "job.json").read_text())["type"] == "JOB_TYPE_BATCH"
    assert not out.exists()  # the launcher wrote nothing: no marker, no state
    monkeypatch.setattr(prepare_mod, "check_resumable", lambda cfg, fp: 0)  # as if one existed
    with pytest.raises(config.ConfigError, match="not available in a template launch"):
        run_mod.run([*argv, "--only_failed"])
    assert len(handed) == 1
    assert no_network.read_text() == ""

    # The job as handed over, run with nobody waiting for it, over a previous export.
    monkeypatch.setattr(graph, "build", build)
    (args, kwargs), = built
    assert kwargs["token"] and kwargs["fp"] is not None
    reference = tmp_path / "reference"
    run_mod.run(["--output", str(reference), "--direct_running_mode=in_memory"])
    os.makedirs(out)
    for rel in ("images/stale.jpg", "report.json", ".tmp-export/started"):  # a killed run's
        os.makedirs(os.path.dirname(out / rel), exist_ok=True)
        (out / rel).write_bytes(b"left over")
    with beam.Pipeline(runner=FnApiRunner()) as p:
        build(p, *args, **kwargs)
    assert tree(str(out)) == tree(str(reference))  # state.json included, nothing else
    assert (out / ".export-state" / "state.json").exists()
    assert not (out / ".tmp-export").exists()


def _cli(args, cwd=ROOT):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


def test_documented_dataflow_command_dry_run(no_network):
    """docs/dataflow.md's command with --dry_run: plan, job built, exit 0, no network."""
    result = _cli(["-m", "pipeline", "--config", "configs/dataflow.yaml",
                   "--release", EXAMPLE_RELEASE, "--runner", "DataflowRunner",
                   "--project", "demo-proj", "--region", "europe-west1",
                   "--temp_location", "gs://demo-bucket/tmp", "--setup_file", "./setup.py",
                   "--dry_run"])
    assert result.returncode == 0, result.stderr
    assert "would export 4 samples" in result.stdout
    assert re.search(r"Dataflow job \S+: \d+ transforms; not submitted", result.stderr)
    assert "Traceback" not in result.stderr
    assert no_network.read_text() == ""


def test_flex_launcher_runs_the_export_entry_point(no_network):
    """dataflow/launcher.py with parameters as a Flex Template passes them (--name=value, no
    --runner): same plan and job as the command line."""
    result = _cli([os.path.join(DATAFLOW, "launcher.py"), f"--release={EXAMPLE_RELEASE}",
                   "--output=gs://demo-bucket/exports/coins", "--images=none",
                   "--validate=false", "--allow_local_files=false", "--project=demo-proj",
                   "--region=europe-west1", "--temp_location=gs://demo-bucket/tmp",
                   f"--setup_file={os.path.join(ROOT, 'setup.py')}", "--dry_run=True"],
                  cwd=DATAFLOW)
    assert result.returncode == 0, result.stderr
    assert "would export 4 samples" in result.stdout and "(images: none)" in result.stdout
    assert re.search(r"Dataflow job \S+: \d+ transforms; not submitted", result.stderr)
    assert no_network.read_text() == ""
    bad = _cli([os.path.join(DATAFLOW, "launcher.py"), "--validate=yes"], cwd=DATAFLOW)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "launcher.py: error: --validate: expected true or false, got 'yes'"


def test_launcher_turns_template_parameters_into_flags():
    flex_args = _load("launcher").flex_args
    assert flex_args(["--release=gs://b/r.json", "--validate=false", "--only_failed=False",
                      "--allow_local_files=TRUE", "--images=copy"]) == [
        "--release=gs://b/r.json", "--allow_local_files", "--images=copy",
        "--runner=DataflowRunner"]
    assert flex_args(["--runner", "DirectRunner"]) == ["--runner", "DirectRunner"]
    assert flex_args(["--runner=DataflowRunner"]) == ["--runner=DataflowRunner"]
    with pytest.raises(ValueError, match="--allow_local_files: expected true or false"):
        flex_args(["--allow_local_files=1"])


# metadata.json: the Flex Template's parameters.

def _export_flags() -> list[argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False)
    ExportOptions._add_argparse_args(parser)
    return [a for a in parser._actions if a.option_strings]


def _metadata() -> dict:
    with open(os.path.join(DATAFLOW, "metadata.json"), encoding="utf-8") as f:
        return json.load(f)


def test_metadata_lists_exactly_the_export_flags():
    params = _metadata()["parameters"]
    assert [p["name"] for p in params] == [a.dest for a in _export_flags()]
    for p in params:
        assert p["label"].strip() and len(p["helpText"]) > 20, p["name"]
        assert p["isOptional"] is (p["name"] not in ("release", "output")), p["name"]
        assert p.get("regexes") or p["name"] == "labelset", p["name"]


def test_metadata_is_what_make_metadata_writes():
    """After changing a flag: python dataflow/make_metadata.py."""
    with open(os.path.join(DATAFLOW, "metadata.json"), encoding="utf-8") as f:
        assert f.read() == _load("make_metadata").render()


def test_metadata_matches_the_dataflow_schema_and_checks_values():
    from google.cloud import dataflow_v1beta3

    with open(os.path.join(DATAFLOW, "metadata.json"), encoding="utf-8") as f:
        parsed = dataflow_v1beta3.TemplateMetadata.from_json(f.read())  # unknown keys raise
    assert parsed.name and parsed.description and not parsed.streaming
    regexes = {p["name"]: [re.compile(r) for r in p.get("regexes", [])]
               for p in _metadata()["parameters"]}

    def accepted(name, value):
        return all(r.fullmatch(value) for r in regexes[name])

    good = {"release": ["gs://b/releases/r.json.gz", "https://x.test/r.json?sig=1"],
            "output": ["gs://b/exports/v1", "gs://b/"], "formats": ["coco-instance,yolo"],
            "filter_by": ["LABELED,reviewed"], "filter_by_metadata": ["camera=front", "n=1"],
            "images": ["copy", "none"], "instance_png": ["gray16", "rgb24"],
            "id_increment": ["1", "-1"], "coco_shard_size": ["1000"],
            "http_timeout": ["30", "2.5"], "max_failure_ratio": ["0.05", "1"],
            "chunk_samples": ["auto", "0"], "config": ["/template/configs/dataflow.yaml"],
            "allow_local_files": ["true", "false"], "validate": ["false"],
            "only_failed": ["false"], "since": [""]}
    bad = {"release": ["/data/r.json"], "output": ["/tmp/out", "gs://b"],
           "formats": ["coco", "yolo,"], "images": ["all"], "coco_shard_size": ["1e3"],
           "max_failure_ratio": ["1.5"], "chunk_samples": ["2000"], "validate": ["true"],
           "only_failed": ["true"], "allow_local_files": ["yes"], "since": ["gs://b/out"]}
    for name, values in good.items():
        assert all(accepted(name, v) for v in values), name
    for name, values in bad.items():
        assert not any(accepted(name, v) for v in values), name
    # The template's values are accepted by the export's own validation.
    cfg = config.load({"release": "gs://b/r.json", "output": "gs://b/out",
                       "formats": "coco-instance,yolo", "filter_by": "LABELED,reviewed",
                       "filter_by_metadata": ["n=1"], "id_increment": -1,
                       "chunk_samples": "0", "http_timeout": 2.5, "max_failure_ratio": 1.0})
    assert cfg.formats == ("coco-instance", "yolo") and cfg.chunk_size(local=False) == 0


# The image: constraints.txt, Dockerfile and setup.py agree.

def _pins() -> dict[str, str]:
    pins = {}
    with open(os.path.join(ROOT, "constraints.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, version = line.partition("==")
                assert version, f"constraints.txt pins with ==: {line}"
                pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_constraints_satisfy_the_package_requirements():
    """constraints.txt (what the image installs) resolves setup.py's ranges, [gcp] included;
    regenerate it with dataflow/freeze_constraints.sh when this fails."""
    from packaging.requirements import Requirement

    pins = _pins()
    required = [Requirement(r) for r in importlib_metadata.requires("segments-beam-export")]
    gcp = [r for r in required
           if r.marker is None or r.marker.evaluate({"extra": "gcp"})]
    assert {"apache-beam", "numpy", "pillow", "pyarrow", "google-cloud-storage"} <= set(pins)
    for req in gcp:
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{name} is not pinned"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name])
    for build_tool in ("pip", "setuptools", "wheel"):
        assert build_tool not in pins  # the package's build needs setuptools>=69


def test_dockerfile_matches_constraints_and_copies_what_it_runs():
    with open(os.path.join(DATAFLOW, "Dockerfile"), encoding="utf-8") as f:
        dockerfile = f.read()
    beam_version = re.search(r"^ARG BEAM_VERSION=(\S+)$", dockerfile, re.MULTILINE).group(1)
    assert beam_version == _pins()["apache-beam"]
    sdk = re.search(r"^FROM apache/beam_python(\d+\.\d+)_sdk:", dockerfile, re.MULTILINE).group(1)
    launcher = re.search(r"^FROM gcr\.io/dataflow-templates-base/python(\d)(\d+)-template-"
                         r"launcher-base:", dockerfile, re.MULTILINE).groups()
    assert sdk == ".".join(launcher)  # one Python minor version for launcher and workers
    assert "-c constraints.txt '.[gcp]'" in dockerfile
    assert "ENTRYPOINT [\"/opt/apache/beam/boot\"]" in dockerfile

    copied = {}  # path in the image -> path in the repository
    for line in re.findall(r"^COPY (?!--from)(.+)$", dockerfile, re.MULTILINE):
        *sources, dest = line.split()
        for src in sources:
            assert os.path.exists(os.path.join(ROOT, src)), src
            if dest.endswith("/") and not os.path.isdir(os.path.join(ROOT, src)):
                target = os.path.join("/template", dest, os.path.basename(src))
            else:  # a folder's content goes into dest
                target = os.path.join("/template", dest)
            copied[os.path.normpath(target)] = src
    env = dict(re.findall(r"^ENV (FLEX_TEMPLATE_PYTHON_\w+)=(\S+)$", dockerfile, re.MULTILINE))
    assert copied[env["FLEX_TEMPLATE_PYTHON_PY_FILE"]] == "dataflow/launcher.py"
    assert copied[env["FLEX_TEMPLATE_PYTHON_SETUP_FILE"]] == "setup.py"
    with open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8") as f:
        allowed = {line[1:] for line in f.read().splitlines() if line.startswith("!")}
    assert set(copied.values()) <= allowed  # the build context holds everything copied
