"""Local stand-ins for Google Cloud Storage and Amazon S3, on 127.0.0.1, for the tests.

    with cloud_env() as env:       # both servers started, the standard variables set
        env.gcs.put("b/k", data)    # read and write buckets with the stores' own SDKs
        subprocess.run([... "--output", "gs://b/out"], env=env.variables)

* GCS: gcp-storage-emulator (its JSON API, in memory) in a thread of this process; gcsfs
  finds it through STORAGE_EMULATOR_HOST, the variable Google's own clients read.
* S3: moto's threaded server (in memory); s3fs (botocore) finds it through
  AWS_ENDPOINT_URL and signs with the fake AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.

The exporter gets nothing else: no test hook in production code. The variables that keep
Google's and AWS's credential lookups off the network (no metadata server probes: only
127.0.0.1 is reachable, and trying other addresses is not allowed here) are set too.
The helpers that upload and download here use google-cloud-storage and boto3, not the
exporter's fsspec code, so what the tests see in a bucket does not depend on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator

# Fake credentials: the tests check they never appear in any output or log.
ACCESS_KEY_ID = "AKIAFAKEKEYID4TESTS"
SECRET_ACCESS_KEY = "fake-secret-Zq8vX1rT9wLm2Nb7Kd4Hs6Yp"


class GcsStandIn:
    """gcp-storage-emulator on a free port of 127.0.0.1."""

    def __init__(self):
        from gcp_storage_emulator.server import create_server

        logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
        self._server = create_server("127.0.0.1", 0, in_memory=True)

    def start(self) -> str:
        self._server.start()
        port = self._server._api._httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self.endpoint

    def stop(self) -> None:
        self._server.stop()

    def _client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="test", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.endpoint})

    def create_bucket(self, bucket: str) -> None:
        self._client().create_bucket(bucket)

    def put(self, key: str, data: bytes) -> None:
        bucket, name = key.split("/", 1)
        self._client().bucket(bucket).blob(name).upload_from_string(data)

    def delete(self, key: str) -> None:
        bucket, name = key.split("/", 1)
        self._client().bucket(bucket).blob(name).delete()

    def objects(self, prefix: str) -> dict[str, bytes]:
        """{name relative to prefix/: bytes} of every object under `bucket/prefix/`
        (None for placeholder objects, whose name ends in "/")."""
        bucket, name = prefix.split("/", 1)
        client = self._client()
        return {b.name[len(name) + 1:]: None if b.name.endswith("/") else b.download_as_bytes()
                for b in client.list_blobs(bucket, prefix=name + "/")}


class S3StandIn:
    """moto's S3 server on a free port of 127.0.0.1."""

    def __init__(self):
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
        self._server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)

    def start(self) -> str:
        self._server.start()
        self.endpoint = "http://127.0.0.1:%d" % self._server.get_host_and_port()[1]
        return self.endpoint

    def stop(self) -> None:
        self._server.stop()

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY_ID,
                            aws_secret_access_key=SECRET_ACCESS_KEY,
                            config=Config(signature_version="s3v4"))

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def put(self, key: str, data: bytes) -> None:
        bucket, name = key.split("/", 1)
        self.client().put_object(Bucket=bucket, Key=name, Body=data)

    def delete(self, key: str) -> None:
        bucket, name = key.split("/", 1)
        self.client().delete_object(Bucket=bucket, Key=name)

    def objects(self, prefix: str) -> dict[str, bytes]:
        bucket, name = prefix.split("/", 1)
        client = self.client()
        out = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=name + "/"):
            for o in page.get("Contents", []):
                key = o["Key"]
                out[key[len(name) + 1:]] = None if key.endswith("/") else client.get_object(
                    Bucket=bucket, Key=key)["Body"].read()
        return out

    def presigned(self, key: str, expires: int = 3600) -> str:
        """A signed GET URL (query string: X-Amz-Credential, X-Amz-Signature, ...)."""
        bucket, name = key.split("/", 1)
        return self.client().generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": name}, ExpiresIn=expires)


@dataclasses.dataclass
class CloudEnv:
    gcs: GcsStandIn
    s3: S3StandIn
    variables: dict[str, str]  # the whole environment for a subprocess

    def store(self, scheme: str):
        return self.gcs if scheme == "gs" else self.s3

    def upload_dir(self, folder: str, url: str) -> None:
        """Every file under the local `folder` to `url` (gs://bucket/prefix or s3://...)."""
        scheme, key = url.split("://", 1)
        for dirpath, _, names in os.walk(folder):
            for n in names:
                path = os.path.join(dirpath, n)
                rel = os.path.relpath(path, folder).replace(os.sep, "/")
                with open(path, "rb") as f:
                    self.store(scheme).put(f"{key}/{rel}", f.read())

    def tree(self, url: str) -> dict[str, bytes]:
        """Every object under `url` ({relative name: bytes}, names with '/')."""
        scheme, key = url.split("://", 1)
        return self.store(scheme).objects(key)


def standard_variables(gcs_endpoint: str, s3_endpoint: str) -> dict[str, str]:
    return {
        "STORAGE_EMULATOR_HOST": gcs_endpoint,
        # No Application Default Credentials here: google-auth would otherwise probe the
        # GCE metadata server; point it at a closed loopback port should anything ask.
        "NO_GCE_CHECK": "true",
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "GCE_METADATA_IP": "127.0.0.1:9",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata credential lookups
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


@contextlib.contextmanager
def cloud_env() -> Iterator[CloudEnv]:
    """Both stand-ins started; the standard variables set in this process while inside
    (for in-process code) and returned for subprocesses."""
    gcs, s3 = GcsStandIn(), S3StandIn()
    gcs.start()
    try:
        s3.start()
        try:
            variables = standard_variables(gcs.endpoint, s3.endpoint)
            saved = {k: os.environ.get(k) for k in variables}
            os.environ.update(variables)
            try:
                yield CloudEnv(gcs, s3, dict(os.environ))
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
                _forget_filesystems()
        finally:
            s3.stop()
    finally:
        gcs.stop()


def _forget_filesystems() -> None:
    """fsspec keeps filesystem instances (with their endpoints) per process; drop those
    made for the stand-ins so a later test cannot reach a stopped server through them."""
    import fsspec

    for proto in ("gs", "gcs", "s3", "s3a"):
        try:
            fsspec.get_filesystem_class(proto).clear_instance_cache()
        except (ImportError, ValueError):
            pass
