"""HTTP(S): a pooled session with retries, and the release body resumed when cut short.

Contract:
  * http(s) goes through one pooled `requests.Session` per fetcher, retrying 429/5xx,
    connection resets and timeouts with capped exponential backoff and jitter, honouring
    `Retry-After`; a body cut short (reset, early close, stall) is fetched again (an asset,
    `fetch`) or resumed from where it broke off (the release, `open_release`).
  * urllib3's own retry messages are silenced: they carry the full request path, query
    string included.
"""

from __future__ import annotations

import gzip
import io
import logging
import random
import time
import urllib.parse
from typing import IO

from transforms.model import errors
from transforms.storage.files import remote_fs
from transforms.storage.urls import local_path, redact, scheme


def open_release(uri: str, timeout: float = 60.0, attempts: int = 5) -> IO[bytes]:
    """A binary stream of the release JSON (a `.gz` suffix is decompressed); over http(s),
    transient faults are retried and a body cut short is resumed (`_HttpReleaseStream`)."""
    try:
        local = local_path(uri)
        if local is not None:
            stream: IO[bytes] = open(local, "rb")
        elif scheme(uri) in ("http", "https"):
            stream = io.BufferedReader(_HttpReleaseStream(uri, timeout, attempts), 1 << 20)
        else:
            fs, path = remote_fs(uri)
            stream = fs.open(path, "rb")
    except errors.ReleaseError:
        raise
    except FileNotFoundError:
        raise errors.ReleaseError(f"--release: no such file: {redact(uri)}") from None
    except ImportError as e:
        raise errors.ReleaseError(f"--release: cannot read {redact(uri)}: {e}") from None
    except Exception as e:  # noqa: BLE001  (gcsfs' HttpError is no OSError)
        raise errors.ReleaseError(f"--release: cannot open {redact(uri)}: {type(e).__name__}") from None
    if urllib.parse.urlsplit(uri).path.endswith(".gz"):
        return gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    return stream


MAX_ASSET_BYTES = 1 << 30  # one image or bitmap; larger responses fail the sample
MAX_REDIRECTS = 5
RETRY_STATUSES = (429, 500, 502, 503, 504)
BACKOFF_FACTOR = 0.2  # seconds; doubles per consecutive failure
BACKOFF_MAX = 10.0
BACKOFF_JITTER = 0.2


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` consecutive failures (urllib3's schedule: none
    after the first, then capped exponential growth, plus jitter)."""
    if failures <= 1:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_FACTOR * 2 ** (failures - 1) + random.random() * BACKOFF_JITTER)


def http_session(attempts: int):
    """A pooled `requests.Session` retrying 429/5xx, resets and timeouts before the body
    `attempts - 1` times with capped exponential backoff and jitter, honouring Retry-After."""
    # urllib3 logs each retry with the full request path, query string included: signed
    # URLs carry their secrets there. Our own messages are redacted.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(
        total=attempts - 1,
        connect=attempts - 1,
        read=attempts - 1,
        status=attempts - 1,
        backoff_factor=BACKOFF_FACTOR,
        backoff_max=BACKOFF_MAX,
        backoff_jitter=BACKOFF_JITTER,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=16, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class BodyError(Exception):
    """The response body was cut short (reset, early close, read timeout): retry."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class _HttpReleaseStream(io.RawIOBase):
    """The release body over http(s), resumed where it broke off when the connection is
    reset, closed early or stalls (a Range request from the last byte read; a server that
    ignores Range sends it all again and the bytes already read are skipped)."""

    def __init__(self, url: str, timeout: float, attempts: int):
        super().__init__()
        self._url, self._timeout, self._attempts = url, timeout, attempts
        self._session = http_session(attempts)
        self._resp = None
        self._pos = 0
        self._open()

    def _open(self) -> None:
        import requests

        headers = {"Accept-Encoding": "identity"}  # byte offsets of the file itself
        if self._pos:
            headers["Range"] = f"bytes={self._pos}-"
        try:
            resp = self._session.get(self._url, stream=True, timeout=self._timeout,
                                     headers=headers)
        except requests.RequestException as e:
            raise errors.ReleaseError(
                f"--release: cannot open {redact(self._url)}: {type(e).__name__} after "
                f"{self._attempts} attempts") from None
        resumed = self._pos and resp.status_code == 206 and resp.headers.get(
            "Content-Range", "").startswith(f"bytes {self._pos}-")
        if resp.status_code != 200 and not resumed:
            resp.close()
            raise errors.ReleaseError(
                f"--release: HTTP {resp.status_code} for {redact(self._url)}"
                + (" (signed release URLs expire; download a fresh one)"
                   if resp.status_code == 403 else ""))
        resp.raw.decode_content = True
        self._resp = resp
        self._skip = 0 if resumed else self._pos  # bytes sent again, to drop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        import urllib3

        failures = 0
        while True:
            try:
                # read1: what one read returns. (read() and readinto() read on to fill the
                # buffer, and bytes read before an error stay inside urllib3.)
                while self._skip:
                    got = self._resp.raw.read1(min(self._skip, 1 << 20))
                    if not got:
                        raise errors.ReleaseError(
                            f"--release: {redact(self._url)} became shorter while read")
                    self._skip -= len(got)
                data = self._resp.raw.read1(len(buffer))
            except (urllib3.exceptions.HTTPError, OSError) as e:
                failures += 1
                if failures == self._attempts:
                    raise errors.ReleaseError(
                        f"--release: {type(e).__name__} reading {redact(self._url)} after "
                        f"{failures} attempts") from None
                self._resp.close()
                time.sleep(backoff(failures))
                self._open()
                continue
            n = len(data)
            buffer[:n] = data
            self._pos += n
            return n

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        self._session.close()
        super().close()
