"""Fetching assets and writing outputs: local, relative and http(s) URLs, redaction."""

import os

import pytest

from benchmarks.server import StaticServer
from transforms import storage
from transforms.model import errors


def test_redact_drops_query_fragment_and_credentials():
    url = "https://user:pw@bucket.s3.amazonaws.com:443/a/b.png?X-Amz-Signature=SECRET&t=1#frag"
    red = storage.redact(url)
    assert red == "https://bucket.s3.amazonaws.com:443/a/b.png?<redacted>"
    assert "SECRET" not in red and "pw" not in red
    assert storage.redact("labels/a.png") == "labels/a.png"


def test_relative_urls_resolve_against_the_release(tmp_path):
    assert storage.resolve("labels/a.png", "https://h/r/release.json") == "https://h/r/labels/a.png"
    local = storage.resolve("labels/a.png", str(tmp_path / "release.json"))
    assert local == str(tmp_path / "labels" / "a.png")
    assert storage.resolve("gs://b/x.png", "https://h/r.json") == "gs://b/x.png"


def test_fetcher_reads_local_and_http_and_reports_404_without_secrets(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"local bytes")
    with StaticServer(str(tmp_path)) as server:
        fetcher = storage.Fetcher(str(tmp_path / "release.json"), timeout=5, attempts=2)
        assert fetcher.fetch("a.bin", "bitmap") == b"local bytes"
        assert fetcher.fetch(server.url + "a.bin?sig=SECRET", "bitmap") == b"local bytes"
        with pytest.raises(errors.FetchError) as e:
            fetcher.fetch(server.url + "missing.png?sig=SECRET", "bitmap")
        assert "HTTP 404" in e.value.reason and "SECRET" not in e.value.reason
        with pytest.raises(errors.FetchError, match="file not found"):
            fetcher.fetch("nope.png", "bitmap")
        with pytest.raises(errors.FetchError, match="no URL"):
            fetcher.fetch(None, "bitmap")
        fetcher.close()


def test_remote_release_may_not_read_local_files(tmp_path):
    (tmp_path / "secret").write_bytes(b"x")
    release = "http://127.0.0.1:9/r/release.json"  # loopback only; never fetched here
    fetcher = storage.Fetcher(release)
    with pytest.raises(errors.FetchError, match="local path refused"):
        fetcher.fetch("file://" + str(tmp_path / "secret"), "image")
    # An absolute path in a remote release is a path on the release's own host (RFC 3986).
    assert storage.resolve("/secret", release) == "http://127.0.0.1:9/secret"
    allowed = storage.Fetcher(release, allow_local_files=True)
    assert allowed.fetch("file://" + str(tmp_path / "secret"), "image") == b"x"


def test_local_release_reads_only_inside_its_folder_unless_allowed(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"outside")
    folder = tmp_path / "release"
    (folder / "labels").mkdir(parents=True)
    (folder / "labels" / "a.png").write_bytes(b"inside")
    release = str(folder / "release.json")
    fetcher = storage.Fetcher(release)
    assert fetcher.fetch("labels/a.png", "bitmap") == b"inside"
    assert fetcher.fetch("labels/../labels/a.png", "bitmap") == b"inside"
    refused = {
        "../outside.png": "outside the release's folder",
        "labels/../../outside.png": "outside the release's folder",
        str(outside): "absolute local path refused",
        "file://" + str(outside): "absolute local path refused",
        "file://" + str(folder / "labels" / "a.png"): "absolute local path refused",
    }
    for url, reason in refused.items():
        with pytest.raises(errors.FetchError) as e:
            fetcher.fetch(url, "bitmap")
        assert reason in e.value.reason and "--allow_local_files" in e.value.reason, url
    allowed = storage.Fetcher(release, allow_local_files=True)
    for url in refused:
        assert allowed.fetch(url, "bitmap") in (b"outside", b"inside")
    with pytest.raises(errors.FetchError, match="unsupported URL scheme 'ftp'"):
        allowed.fetch("ftp://127.0.0.1/x.png", "bitmap")


def test_connection_refused_is_a_fetch_error_after_retries():
    fetcher = storage.Fetcher("http://127.0.0.1:9/release.json", timeout=2, attempts=2)
    with pytest.raises(errors.FetchError, match="after 2 attempts"):
        fetcher.fetch("http://127.0.0.1:9/x.png", "bitmap")  # discard port: nothing listens


def test_write_bytes_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = str(tmp_path / "deep" / "dir" / "f.bin")
    storage.write_bytes(path, b"one")
    storage.write_bytes(path, b"two")
    assert open(path, "rb").read() == b"two"
    assert os.listdir(tmp_path / "deep" / "dir") == ["f.bin"]
    with storage.open_atomic(str(tmp_path / "doc.json")) as f:
        f.write(b"{}")
    assert sorted(os.listdir(tmp_path)) == ["deep", "doc.json"]


def test_gzipped_release_is_decompressed(tmp_path):
    import gzip

    path = tmp_path / "r.json.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}'))
    with storage.open_release(str(path)) as f:
        assert f.read() == b'{"a": 1}'


def test_published_files_get_the_usual_permissions(tmp_path):
    """Temporary files are private; the published file is as readable as open() makes it."""
    reference = tmp_path / "plain"
    reference.write_bytes(b"x")
    storage.write_bytes(str(tmp_path / "a.bin"), b"x")
    with storage.open_atomic(str(tmp_path / "b.json")) as f:
        f.write(b"{}")
    expected = os.stat(reference).st_mode & 0o777
    assert os.stat(tmp_path / "a.bin").st_mode & 0o777 == expected
    assert os.stat(tmp_path / "b.json").st_mode & 0o777 == expected


class _Flaky:
    """A loopback server answering each path with a scripted list of statuses, then 200."""

    def __init__(self, script):
        import http.server
        import threading

        self.script, self.hits = {k: list(v) for k, v in script.items()}, {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                pending = outer.script.get(self.path, [])
                status = pending.pop(0) if pending else 200
                body = b"payload" if status == 200 else b"no"
                self.send_response(status)
                if status in (429, 503):
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_transient_http_errors_are_retried_and_permanent_ones_are_not():
    server = _Flaky({"/flaky": [503, 429, 502], "/gone": [404], "/down": [503] * 10})
    try:
        fetcher = storage.Fetcher(server.url + "/release.json", timeout=5, attempts=4)
        assert fetcher.fetch(server.url + "/flaky", "bitmap") == b"payload"
        assert server.hits["/flaky"] == 4  # three transient failures, then success
        with pytest.raises(errors.FetchError, match="HTTP 404"):
            fetcher.fetch(server.url + "/gone", "bitmap")
        assert server.hits["/gone"] == 1  # a 404 is final
        with pytest.raises(errors.FetchError, match="HTTP 503"):
            fetcher.fetch(server.url + "/down", "bitmap")
        assert server.hits["/down"] == 4  # attempts, then the sample fails
        fetcher.close()
    finally:
        server.close()


def test_signed_url_secrets_never_reach_the_logs(caplog):
    """Connections that drop mid-request make urllib3 retry; nothing logged may contain the
    URL's query string (signed URLs carry their credentials there)."""
    import logging
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def drop_every_connection():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.recv(1024)
            conn.close()  # no response at all

    thread = threading.Thread(target=drop_every_connection, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/b.png?X-Goog-Signature=SECRET123"
    try:
        with caplog.at_level(logging.DEBUG):
            fetcher = storage.Fetcher("http://127.0.0.1:9/release.json", timeout=2, attempts=3)
            with pytest.raises(errors.FetchError) as e:
                fetcher.fetch(url, "bitmap")
            fetcher.close()
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert "SECRET123" not in e.value.reason
    assert not [r for r in caplog.records if "SECRET123" in r.getMessage()]


def test_responses_above_the_size_limit_fail_the_fetch_without_secrets(tmp_path):
    from benchmarks.server import StaticServer

    (tmp_path / "big.png").write_bytes(b"x" * 5000)
    (tmp_path / "ok.png").write_bytes(b"y" * 1000)
    with StaticServer(str(tmp_path)) as server:
        fetcher = storage.Fetcher(server.url + "release.json", timeout=5, max_bytes=1000)
        with pytest.raises(errors.FetchError, match="1000-byte limit") as exc:
            fetcher.fetch(server.url + "big.png?X-Amz-Signature=secret", "bitmap")
        assert "secret" not in str(exc.value)
        assert fetcher.fetch(server.url + "ok.png", "bitmap") == b"y" * 1000
        # A header read stays a header read, whatever the limit.
        assert fetcher.fetch(server.url + "big.png", "image", limit=10) == b"x" * 10
        fetcher.close()
    local = storage.Fetcher(str(tmp_path / "release.json"), max_bytes=1000)
    with pytest.raises(errors.FetchError, match="1000-byte limit"):
        local.fetch("big.png", "bitmap")
    assert local.fetch("ok.png", "bitmap") == b"y" * 1000


def test_a_redirect_loop_fails_the_fetch_after_a_few_hops():
    import http.server
    import threading

    hits = []

    class Loop(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Loop)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/a.png?token=secret"
        fetcher = storage.Fetcher(url, timeout=5, attempts=2)
        with pytest.raises(errors.FetchError, match=f"more than {storage.MAX_REDIRECTS} redirects") as exc:
            fetcher.fetch(url, "image")
        assert "secret" not in str(exc.value)
        assert len(hits) == storage.MAX_REDIRECTS + 1
        fetcher.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
