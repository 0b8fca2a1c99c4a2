"""Packaging for the Segments.ai release exporter (Apache Beam).

Used three ways: `pip install -e .` for local work, `pip install '.[test]'` by the test
command, and `--setup_file ./setup.py` when submitting to Dataflow (workers pip-install the
sdist built from this file, the Beam "juliaset" pattern).

Version ranges sit inside Apache Beam 2.70's own pins (numpy<2.3, pyarrow<19, grpcio<1.66,
requests<3): a wider range would make pip silently backtrack the whole stack.

Beam is pinned to 2.70, not the newest release: Flink and Spark run Beam pipelines through
Java job servers whose SDK must match the Python SDK's version, and 2.70.0 is the newest
Beam whose Flink and Spark runner jars Maven Central serves to this project's machines (the
README's "Running on Flink" says how scripts/cluster.sh assembles them).
"""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    # The pipeline engine; one minor version so that the Dataflow worker image and the
    # Flink and Spark job servers (Beam 2.70.0 jars) match.
    "apache-beam>=2.70.0,<2.71",
    "numpy>=1.26,<2.3",
    "Pillow>=12.1.1,<13",
    "pyarrow>=16,<19",
    # gs:// and s3:// releases, assets and outputs, one code path for both (fsspec), with
    # credentials and endpoints from the standard environment (ADC, STORAGE_EMULATOR_HOST;
    # AWS_* variables). s3fs and gcsfs are released together with fsspec and each pins the
    # fsspec of its own release, so pip picks the versions that agree (2025.x with Beam
    # 2.70[gcp], which caps google-cloud-storage below 3; 2025.3.0 with the test extra,
    # whose `datasets` 4.0 caps fsspec).
    "fsspec>=2025.3",
    "gcsfs>=2025.3",
    "s3fs>=2025.3",
    # Streaming JSON parser with a C backend (yajl2_c): reads multi-GB releases in
    # constant memory, ~100 MB/s. The stdlib json module needs ~6x the file in RAM.
    "ijson>=3.3,<4",
    # COCO RLE string encoding: the reference implementation every COCO consumer uses,
    # so our `counts` strings are byte-identical to what pycocotools would produce.
    "pycocotools>=2.0.8,<3",
    # HTTP(S) bitmap/image fetching with a pooled session and urllib3 retries.
    "requests>=2.32.4,<3",
    # configs/*.yaml.
    "PyYAML>=6,<7",
    # libspng bindings: decodes the RGBA bitmaps 4x faster than Pillow (5 ms vs 19 ms for
    # 1080p); Pillow stays the fallback and the source of error messages.
    "pyspng>=0.1.2,<0.2",
    # zlib-ng: deflate for our PNG writer, 5x faster than the stdlib zlib (a 1080p RGB label
    # picture in 2 ms vs 13 ms). Falls back to zlib if absent (same pixels, other bytes).
    "zlib-ng>=0.5,<2",
]

EXTRAS_REQUIRE = {
    # DataflowRunner refuses to load without the [gcp] extra.
    "gcp": ["apache-beam[gcp]>=2.70.0,<2.71"],
    # Readers `python -m pipeline.validate` also uses when present (the test suite needs
    # them): faster-coco-eval's stricter RLE decoder, hotcoco's panoptic quality (PQ), and
    # the consumers of the shard formats (datasets, webdataset; see the test extra).
    "validate": ["faster-coco-eval>=1.6,<2", "hotcoco>=1.2,<2", "datasets>=4,<6",
                 "webdataset>=1,<2"],
    "test": [
        "faster-coco-eval>=1.6,<2",
        "hotcoco>=1.2,<2",
        "pytest>=8,<10",
        # A maintained YOLO reader (Roboflow's), to read our YOLO export back in the tests.
        "supervision>=0.25,<1",
        # Per-test timeout: a hang (network, runner) fails the test instead of CI.
        "pytest-timeout>=2.3,<3",
        # DataflowRunner: tests/e2e/test_dataflow.py builds the Dataflow job offline
        # (--dry_run=True). The runner refuses to load without this extra; it adds ~65
        # packages (~30 s to install).
        "apache-beam[gcp]>=2.70.0,<2.71",
        # The Dataflow client's TemplateMetadata schema: the same test reads metadata.json
        # with it (Beam 2.77's [gcp] brought it; 2.70's runner uses its own apitools client).
        "google-cloud-dataflow-client>=0.8,<1",
        # Local stand-ins for the object stores, started by tests/cloudservers.py on
        # 127.0.0.1 (tests/e2e/test_cloud_io.py): gcp-storage-emulator (JSON API: simple,
        # multipart and resumable uploads, rewrite, batch delete, prefix listings; pure
        # Python, released 2026) and moto's S3 server (the AWS SDK's own mock, maintained;
        # [s3] plus Flask for its threaded server, without [server]'s ~40 other services).
        # boto3 (from moto) and google-cloud-storage (from [gcp]) read the buckets back in
        # the tests, independently of the exporter's fsspec code.
        "gcp-storage-emulator>=2024.8",
        "moto[s3]>=5.1,<6",
        "flask>=3,<4",
        "flask-cors>=5,<7",
        # The consumers of the split and shard outputs, reading them back in
        # tests/e2e/test_splits_shards.py: Hugging Face `datasets` (load_dataset on hf/ and
        # on its Parquet files; pure Python over pyarrow, ~6 s to install) and webdataset
        # (iterates the tars; pure Python).
        "datasets>=4,<6",
        "webdataset>=1,<2",
        # Ultralytics' own dataset checker (check_det_dataset) on data.yaml and the split
        # lists. It imports torch at module level (ultralytics.utils, ultralytics.nn), and
        # PyPI's Linux torch wheel loads the CUDA libraries (nvidia-* wheels) on import, so
        # `--no-deps` or a torch without them does not import: the whole stack is needed.
        # Measured here: 1 min 50 s to 2 min 50 s to install, ~6 GB on disk; CI stays far
        # within its time (no GPU is used, the test only reads files).
        "ultralytics>=8.3,<9",
    ],
}

setup(
    name="segments-beam-export",
    version="0.1.0",
    description="Export Segments.ai releases to COCO, YOLO and PNG formats with Apache Beam.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11,<3.15",
    packages=find_packages(include=["pipeline", "pipeline.*", "transforms", "transforms.*"]),
    # The bundled example (the default --release): in the wheel and in the sdist that
    # --setup_file stages for Dataflow workers. (include_package_data would also treat
    # example/ as an unlisted package and warn on every build.)
    package_data={"pipeline": ["example/*.json", "example/*.md", "example/images/*", "example/labels/*"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["segments-export=pipeline.run:main"]},
)
