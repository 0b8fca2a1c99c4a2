"""Fetching asset bytes (images, bitmaps) for one worker: http(s), gs://, s3://, local.

Contract:
  * Local files are read only where the release puts them: a relative path in a local
    release that stays inside the release's folder. `file://` URLs, absolute paths,
    relative paths leaving that folder (`../..`), and any local path in a remote release
    are refused per sample unless `allow_local_files` (`--allow_local_files`) is set.
    Other schemes than http(s), gs and s3 are refused per sample.
  * Every problem is a `FetchError` naming what was fetched and the redacted URL: the
    sample fails, the export goes on. A response larger than `max_bytes` or more than
    `MAX_REDIRECTS` redirects fail the sample instead of filling memory or looping.
"""

from __future__ import annotations

import os
import time

from transforms.model import errors
from transforms.storage.files import remote_fs
from transforms.storage.http import (
    MAX_ASSET_BYTES,
    MAX_REDIRECTS,
    RETRY_STATUSES,
    BodyError,
    backoff,
    http_session,
)
from transforms.storage.urls import local_path, redact, resolve, scheme


class Fetcher:
    """Fetches asset bytes. Build in `DoFn.setup()`; the session is created lazily.

    A response larger than `max_bytes` or more than `MAX_REDIRECTS` redirects fail the
    sample (FetchError) instead of filling the worker's memory or looping.
    """

    def __init__(self, release_uri: str, timeout: float = 30.0, attempts: int = 5,
                 allow_local_files: bool = False, max_bytes: int = MAX_ASSET_BYTES):
        self._release_uri = release_uri
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._attempts = attempts
        self._allow_local_files = allow_local_files
        # Relative paths of a local release may read inside its folder (lexically: a
        # symlink the user placed there is theirs to follow).
        self._release_dir = (None if scheme(release_uri)
                             else os.path.dirname(os.path.abspath(release_uri)))
        self._session = None
        self._fs: dict[str, object] = {}

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _http(self):
        if self._session is None:
            self._session = http_session(self._attempts)
        return self._session

    def fetch(self, url: str | None, what: str, limit: int | None = None) -> bytes:
        """Returns the bytes at `url` or raises FetchError naming `what` (e.g. "bitmap").

        With `limit`, only the first `limit` bytes (or fewer, for a shorter file) are read:
        an HTTP Range request, honoured or not by the server, and a short read elsewhere.
        """
        if not url:
            raise errors.FetchError(f"{what}: no URL")
        target = resolve(url, self._release_uri)
        s = scheme(target)
        if s in ("http", "https"):
            return self._fetch_http(target, what, limit)
        if s in ("gs", "s3"):
            return self._fetch_fsspec(target, what, limit)
        local = local_path(target)
        if local is None:
            raise errors.FetchError(f"{what}: unsupported URL scheme {s!r} in {redact(url)}")
        refused = self._local_refusal(url, local)
        if refused:
            raise errors.FetchError(f"{what}: {refused}: {redact(url)} (--allow_local_files "
                                    "allows it)")
        try:
            with open(local, "rb") as f:
                return self._capped(f.read(limit or self._max_bytes + 1), what, url)
        except FileNotFoundError:
            raise errors.FetchError(f"{what}: file not found: {url}") from None
        except OSError as e:
            raise errors.FetchError(f"{what}: cannot read {url}: {e.strerror}") from None

    def _local_refusal(self, url: str, local: str) -> str:
        """Why reading `local` (resolved from `url`) is refused, or ""."""
        if self._allow_local_files:
            return ""
        if self._release_dir is None:
            return "local path refused in a remote release"
        if scheme(url) or os.path.isabs(url):
            return "absolute local path refused"
        inside = os.path.commonpath([self._release_dir, os.path.normpath(local)])
        if inside != self._release_dir:
            return "local path outside the release's folder refused"
        return ""

    def _too_large(self, what: str, url: str) -> errors.FetchError:
        return errors.FetchError(
            f"{what}: larger than the {self._max_bytes}-byte limit: {redact(url)}")

    def _capped(self, data: bytes, what: str, url: str) -> bytes:
        if len(data) > self._max_bytes:
            raise self._too_large(what, url)
        return data

    def _fetch_http(self, url: str, what: str, limit: int | None = None) -> bytes:
        import requests

        # urllib3 retries what happens before the body (statuses, resets, timeouts); a body
        # cut short (reset, early close, stall) surfaces while reading it: retried here.
        for attempt in range(1, self._attempts + 1):
            try:
                return self._get_http(url, what, limit)
            except BodyError as e:
                if attempt == self._attempts:
                    raise errors.FetchError(
                        f"{what}: {e.kind} reading the body after {attempt} attempts for "
                        f"{redact(url)}") from None
                time.sleep(backoff(attempt))
            except requests.TooManyRedirects:
                raise errors.FetchError(
                    f"{what}: more than {MAX_REDIRECTS} redirects for {redact(url)}") from None
            except requests.RequestException as e:
                raise errors.FetchError(
                    f"{what}: {type(e).__name__} after {self._attempts} attempts for "
                    f"{redact(url)}") from None
        raise AssertionError("unreachable")

    def _get_http(self, url: str, what: str, limit: int | None) -> bytes:
        import requests

        headers = {"Range": f"bytes=0-{limit - 1}"} if limit else None
        cap = limit or self._max_bytes + 1
        with self._http().get(url, timeout=self._timeout, headers=headers,
                              stream=True) as resp:
            if limit is not None and resp.status_code == 416:  # an empty file
                return b""
            if resp.status_code not in ((200, 206) if limit else (200,)):
                retried = (f" after {self._attempts} attempts"
                           if resp.status_code in RETRY_STATUSES else "")
                raise errors.FetchError(
                    f"{what}: HTTP {resp.status_code}{retried} for {redact(url)}")
            declared = resp.headers.get("Content-Length", "")
            if limit is None and declared.isdigit() and int(declared) > self._max_bytes:
                raise self._too_large(what, url)
            data = bytearray()
            try:
                # A server ignoring Range sends everything: stop reading at the cap.
                for chunk in resp.iter_content(1 << 20):
                    data += chunk
                    if len(data) >= cap:
                        break
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
                raise BodyError(type(e).__name__) from None
        return bytes(data[:limit]) if limit else self._capped(bytes(data), what, url)

    def _fetch_fsspec(self, url: str, what: str, limit: int | None = None) -> bytes:
        # gcsfs and s3fs retry transient faults themselves (429, 5xx, resets).
        try:
            fs, path = remote_fs(url, fresh=False)  # assets do not change during an export
            with fs.open(path, "rb") as f:
                return self._capped(f.read(limit or self._max_bytes + 1), what, url)
        except errors.FetchError:
            raise
        except FileNotFoundError:
            raise errors.FetchError(f"{what}: not found: {redact(url)}") from None
        except ImportError as e:
            raise errors.FetchError(f"{what}: cannot read {redact(url)}: {e}") from None
        except Exception as e:  # noqa: BLE001  (gcsfs' HttpError is no OSError: a 403 fails the sample)
            raise errors.FetchError(f"{what}: {type(e).__name__} for {redact(url)}") from None
