"""Reading release files and assets, writing outputs: local paths, http(s), gs://, s3://.

Contract:
  * A relative asset URL is resolved against the release file's location (a directory for a
    local release, `urljoin` for a remote one).
  * Local files are read only where the release puts them: a relative path in a local
    release that stays inside the release's folder. `file://` URLs, absolute paths,
    relative paths leaving that folder (`../..`), and any local path in a remote release
    are refused per sample unless `allow_local_files` (`--allow_local_files`) is set.
    Other schemes than http(s), gs and s3 are refused per sample.
    A relative URL in a gs:// or s3:// release stays in its bucket, next to the release.
  * http(s) goes through one pooled `requests.Session` per fetcher, retrying 429/5xx,
    connection resets and timeouts with capped exponential backoff and jitter, honouring
    `Retry-After`; a body cut short (reset, early close, stall) is fetched again (an asset)
    or resumed from where it broke off (the release).
  * gs:// and s3:// go through fsspec (gcsfs, s3fs), for reading and writing alike: one code
    path for both stores, on the launcher and on every worker. (Beam's FileSystems would
    need apache-beam[aws] for S3 and a second client for each store.) Credentials and
    endpoints come only from the standard environment: Application Default Credentials and
    STORAGE_EMULATOR_HOST for gcsfs; AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN, AWS_PROFILE, AWS_ENDPOINT_URL, ... for s3fs (botocore). Nothing here
    stores or logs them.
  * URLs are redacted (query string, fragment and credentials dropped) in every message.
  * Writes are atomic per file: local files are written under a temporary name and renamed
    (POSIX rename); an object store has no rename (GCS and S3 copy and delete), but publishes
    an object only when its upload completes, so objects are written in place, in one
    request (`write_bytes`) or as a resumable/multipart upload that is cancelled, never
    completed, when writing fails (`open_atomic`). A reader sees the previous object or the
    new one, never part of one. The export as a whole is not atomic anywhere: its
    completion is marked by `.export-state/state.json` being written last (see run.py).
  * Listings are never served from fsspec's caches: gcsfs and s3fs keep one filesystem
    instance per process with a directory-listing cache, which other processes (workers,
    later steps) make stale by writing. Every listing, existence check, deletion and read
    here starts from an emptied cache. An object store has no folders: a "folder" is a
    prefix, absent once its last object is deleted; zero-byte placeholder objects ending in
    `/` (made by consoles) are not files.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import posixpath
import random
import tempfile
import time
import urllib.parse
from typing import IO

from transforms.formats import errors

REMOTE_SCHEMES = ("http", "https", "gs", "s3")


def scheme(uri: str) -> str:
    s = urllib.parse.urlsplit(uri).scheme.lower()
    # A Windows drive letter ("C:\x") is not a scheme.
    return "" if len(s) == 1 else s


def is_remote(uri: str) -> bool:
    return scheme(uri) in REMOTE_SCHEMES


def redact(url: str | None) -> str:
    """Drops credentials, query string and fragment: signed URLs carry secrets there."""
    if not url:
        return str(url)
    if not scheme(url):
        return url
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = "?<redacted>" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", "")) + query


def resolve(url: str, release_uri: str) -> str:
    """An asset URL as it must be fetched: relative URLs are relative to the release."""
    if scheme(url):
        return url
    s = scheme(release_uri)
    if s in ("gs", "s3"):
        # urljoin leaves URLs of schemes it does not know (gs, s3) unjoined.
        joined = urllib.parse.urljoin("http://" + release_uri[len(s) + 3:], url)
        return f"{s}://{joined[len('http://'):]}"
    if is_remote(release_uri):
        return urllib.parse.urljoin(release_uri, url)
    if os.path.isabs(url):
        return url
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(release_uri)), url))


def _local_path(uri: str) -> str | None:
    s = scheme(uri)
    if s == "file":
        return urllib.parse.unquote(urllib.parse.urlsplit(uri).path)
    if s == "":
        return uri
    return None


def open_release(uri: str, timeout: float = 60.0, attempts: int = 5) -> IO[bytes]:
    """A binary stream of the release JSON (a `.gz` suffix is decompressed); over http(s),
    transient faults are retried and a body cut short is resumed (`_HttpReleaseStream`)."""
    try:
        local = _local_path(uri)
        if local is not None:
            stream: IO[bytes] = open(local, "rb")
        elif scheme(uri) in ("http", "https"):
            stream = io.BufferedReader(_HttpReleaseStream(uri, timeout, attempts), 1 << 20)
        else:
            fs, path = _remote(uri)
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


class _BodyError(Exception):
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
        local = _local_path(target)
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
            except _BodyError as e:
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
                raise _BodyError(type(e).__name__) from None
        return bytes(data[:limit]) if limit else self._capped(bytes(data), what, url)

    def _fetch_fsspec(self, url: str, what: str, limit: int | None = None) -> bytes:
        # gcsfs and s3fs retry transient faults themselves (429, 5xx, resets).
        try:
            fs, path = _remote(url, fresh=False)  # assets do not change during an export
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


# --------------------------------------------------------------------------- writing


def join(base: str, *parts: str) -> str:
    if scheme(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


# Temporary files are private (0600); published files get the mode open() would give them.
_FILE_MODE = 0o666 & ~_umask()


def _remote(uri: str, fresh: bool = True):
    """(fsspec filesystem, path inside it) of a gs:// or s3:// URI. With `fresh`, the
    instance's listing cache is emptied first: it is shared by everything in this process
    and other processes write to the same bucket (see the module contract)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    if fresh:
        fs.invalidate_cache()
    return fs, path


def write_bytes(path: str, data: bytes) -> None:
    """Atomic, idempotent write: a retry rewrites the same bytes under the same name."""
    local = _local_path(path)
    if local is None:
        fs, p = _remote(path, fresh=False)
        fs.pipe_file(p, data)  # one request; the object appears complete or not at all
        return
    directory = os.path.dirname(local) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="~")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, local)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def open_atomic(path: str):
    """A context manager writing `path` atomically (streamed; for large documents)."""
    return _AtomicWriter(path)


class _AtomicWriter:
    def __init__(self, path: str):
        self._path = path
        self._local = _local_path(path)

    def __enter__(self) -> IO[bytes]:
        if self._local is None:
            # Buffered, then a resumable (GCS) or multipart (S3) upload for large files:
            # the object exists only once the file is closed without error.
            fs, p = _remote(self._path, fresh=False)
            self._f = fs.open(p, "wb")
            return self._f
        directory = os.path.dirname(self._local) or "."
        os.makedirs(directory, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="~")
        self._f = os.fdopen(fd, "wb")
        return self._f

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._local is None:
            if exc_type is None:
                self._f.close()  # completes the upload: the object appears
                return
            # Closing would publish what was written so far: cancel the upload instead.
            # (An upload left unfinished, should cancelling fail, never becomes an object.)
            try:
                self._f.discard()
            except Exception:  # noqa: BLE001  (best effort; the error being raised matters)
                pass
            self._f.closed = True
            return
        self._f.close()
        if exc_type is None:
            os.chmod(self._tmp, _FILE_MODE)
            os.replace(self._tmp, self._local)
        else:
            os.unlink(self._tmp)


def read_bytes(path: str) -> bytes:
    local = _local_path(path)
    if local is not None:
        with open(local, "rb") as f:
            return f.read()
    fs, p = _remote(path)
    return fs.cat_file(p)


def _remote_entries(path: str) -> list[tuple[str, str]]:
    """(name, "file" | "directory") directly under a gs:// or s3:// prefix ([] if none).

    Placeholder objects (the prefix itself, or names ending in "/") are not entries."""
    fs, p = _remote(path)
    base = p.rstrip("/")
    try:
        listing = fs.ls(base, detail=True)
    except FileNotFoundError:
        return []
    out = {}
    for e in listing:
        name = e["name"]
        if name.rstrip("/") == base or (name.endswith("/") and e.get("type") == "file"):
            continue
        out[posixpath.basename(name.rstrip("/"))] = (
            "directory" if e.get("type") == "directory" else "file")
    return sorted(out.items())


def check_output(path: str, owned: tuple[str, ...]) -> list[str]:
    """The entries of a previous export in `path` ([] if empty or absent), local or remote.

    A previous export is recognised by its report or manifest, or, for a run killed before
    writing them, by the temporary folder (`paths.TEMP_DIR`) every run creates first.
    Raises ValueError when the folder holds other files but no previous export: an export
    never deletes files it did not write. On an object store the "folder" is the prefix
    `path/` (a placeholder object for it does not count as content).
    """
    local = _local_path(path)
    if local is None:
        entries = [name for name, _ in _remote_entries(path)]
    elif os.path.isdir(local):
        entries = os.listdir(local)
    else:
        return []
    ours = [e for e in entries if e in owned]
    if entries and not ({"report.json", "manifest", ".tmp-export"} & set(ours)):
        raise errors.ReleaseError(
            f"--output: {redact(path)} is not empty and holds no previous export; choose an "
            "empty or new folder")
    return ours


def list_names(folder: str) -> list[str]:
    """Sorted names of the files directly in `folder` ([] when it does not exist)."""
    local = _local_path(folder)
    if local is not None:
        if not os.path.isdir(local):
            return []
        return sorted(n for n in os.listdir(local) if os.path.isfile(os.path.join(local, n)))
    return [name for name, kind in _remote_entries(folder) if kind == "file"]


def remove_tree(path: str) -> None:
    """Deletes a file or a directory tree; missing is fine. On an object store: the object
    `path` and every object under the prefix `path/` (never `path-x`)."""
    local = _local_path(path)
    if local is not None:
        import shutil

        if os.path.isdir(local):
            shutil.rmtree(local, ignore_errors=True)
        elif os.path.exists(local):
            os.unlink(local)
        return
    fs, p = _remote(path)
    try:
        # The object `p`, the objects under `p/` and its placeholder object `p/`, if any.
        fs.rm(p.rstrip("/"), recursive=True)
    except FileNotFoundError:
        pass
    fs.invalidate_cache()


def remove_file(root: str, rel: str) -> None:
    """Deletes the file `rel` under `root` and the folders it leaves empty (up to `root`);
    missing is fine. (Object stores have no empty folders.)"""
    remove_tree(join(root, rel))
    base = _local_path(root)
    if base is None:
        return
    folder = os.path.dirname(os.path.join(base, rel))
    while os.path.abspath(folder) != os.path.abspath(base) and folder.startswith(base):
        try:
            os.rmdir(folder)  # only when empty
        except OSError:
            return
        folder = os.path.dirname(folder)


def open_read(path: str) -> IO[bytes]:
    local = _local_path(path)
    if local is not None:
        return open(local, "rb")
    fs, p = _remote(path)
    return fs.open(p, "rb")


def walk_files(root: str) -> list[str]:
    """Sorted paths (relative to `root`, with "/") of every file under `root`, local or
    remote; placeholder objects are left out."""
    local = _local_path(root)
    if local is not None:
        out = []
        for dirpath, _, names in os.walk(local):
            for n in names:
                rel = os.path.relpath(os.path.join(dirpath, n), local)
                out.append(rel.replace(os.sep, "/"))
        return sorted(out)
    fs, p = _remote(root)
    base = p.rstrip("/") + "/"
    return sorted(f[len(base):] for f in fs.find(base, withdirs=False)
                  if f.startswith(base) and not f.endswith("/") and len(f) > len(base))


def download_tree(root: str, target: str, skip: tuple[str, ...] = ()) -> int:
    """Copies every file under the remote folder `root` into the local folder `target`,
    except those under the top-level entries `skip`; returns the number of files.

    Names that would leave `target` (absolute, `..`) are not copied."""
    fs, p = _remote(root)
    base = p.rstrip("/")
    remote, local = [], []
    for rel in walk_files(root):
        parts = rel.split("/")
        if parts[0] in skip or any(c in ("", ".", "..") for c in parts):
            continue
        remote.append(f"{base}/{rel}")
        local.append(os.path.join(target, *parts))
        os.makedirs(os.path.dirname(local[-1]), exist_ok=True)
    if remote:
        fs.get(remote, local)
    return len(remote)
