"""Output files on a local disk, gs:// or s3://: atomic writes, reads, listings, deletion.

Contract:
  * gs:// and s3:// go through fsspec (gcsfs, s3fs), for reading and writing alike: one code
    path for both stores, on the launcher and on every worker. (Beam's FileSystems would
    need apache-beam[aws] for S3 and a second client for each store.) Credentials and
    endpoints come only from the standard environment: Application Default Credentials and
    STORAGE_EMULATOR_HOST for gcsfs; AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN, AWS_PROFILE, AWS_ENDPOINT_URL, ... for s3fs (botocore). Nothing here
    stores or logs them.
  * Writes are atomic per file: local files are written under a temporary name and renamed
    (POSIX rename); an object store has no rename (GCS and S3 copy and delete), but publishes
    an object only when its upload completes, so objects are written in place, in one
    request (`write_bytes`) or as a resumable/multipart upload that is cancelled, never
    completed, when writing fails (`open_atomic`). A reader sees the previous object or the
    new one, never part of one. The export as a whole is not atomic anywhere: its
    completion is marked by `.export-state/state.json` being written last.
  * Listings are never served from fsspec's caches: gcsfs and s3fs keep one filesystem
    instance per process with a directory-listing cache, which other processes (workers,
    later steps) make stale by writing. Every listing, existence check, deletion and read
    here starts from an emptied cache. An object store has no folders: a "folder" is a
    prefix, absent once its last object is deleted; zero-byte placeholder objects ending in
    `/` (made by consoles) are not files.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from typing import IO

from transforms.model import errors
from transforms.storage.urls import join, local_path, redact


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


# Temporary files are private (0600); published files get the mode open() would give them.
_FILE_MODE = 0o666 & ~_umask()


def remote_fs(uri: str, fresh: bool = True):
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
    local = local_path(path)
    if local is None:
        fs, p = remote_fs(path, fresh=False)
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
        self._local = local_path(path)

    def __enter__(self) -> IO[bytes]:
        if self._local is None:
            # Buffered, then a resumable (GCS) or multipart (S3) upload for large files:
            # the object exists only once the file is closed without error.
            fs, p = remote_fs(self._path, fresh=False)
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
    local = local_path(path)
    if local is not None:
        with open(local, "rb") as f:
            return f.read()
    fs, p = remote_fs(path)
    return fs.cat_file(p)


def _remote_entries(path: str) -> list[tuple[str, str]]:
    """(name, "file" | "directory") directly under a gs:// or s3:// prefix ([] if none).

    Placeholder objects (the prefix itself, or names ending in "/") are not entries."""
    fs, p = remote_fs(path)
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
    local = local_path(path)
    if local is None:
        entries = [name for name, _ in _remote_entries(path)]
    elif os.path.isdir(local):
        entries = os.listdir(local)
    elif os.path.lexists(local):
        raise errors.ReleaseError(f"--output: {path} is a file, not a folder")
    else:
        return []
    ours = [e for e in entries if e in owned]
    if entries and not ({"report.json", "manifest", ".tmp-export"} & set(ours)):
        raise errors.ReleaseError(
            f"--output: {redact(path)} is not empty and holds no previous export; choose an "
            "empty or new folder")
    return ours


def check_writable(path: str) -> None:
    """Raises ReleaseError when the local folder `path` cannot be created or written (its
    nearest existing parent is a file, or not writable). Object stores are not probed: a
    missing permission there fails at the first write."""
    local = local_path(path)
    if local is None:
        return
    existing = os.path.abspath(local)
    while not os.path.lexists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise errors.ReleaseError(
            f"--output: cannot create {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise errors.ReleaseError(f"--output: cannot write in {existing} (permission denied)")


def list_names(folder: str) -> list[str]:
    """Sorted names of the files directly in `folder` ([] when it does not exist)."""
    local = local_path(folder)
    if local is not None:
        if not os.path.isdir(local):
            return []
        return sorted(n for n in os.listdir(local) if os.path.isfile(os.path.join(local, n)))
    return [name for name, kind in _remote_entries(folder) if kind == "file"]


def remove_tree(path: str) -> None:
    """Deletes a file or a directory tree; missing is fine. On an object store: the object
    `path` and every object under the prefix `path/` (never `path-x`)."""
    local = local_path(path)
    if local is not None:
        import shutil

        if os.path.isdir(local):
            shutil.rmtree(local, ignore_errors=True)
        elif os.path.exists(local):
            os.unlink(local)
        return
    fs, p = remote_fs(path)
    if "s3" in _protocols(fs):
        _remove_s3(fs, p.rstrip("/"))
    else:
        try:
            # The object `p`, the objects under `p/` and its placeholder object `p/`, if any.
            fs.rm(p.rstrip("/"), recursive=True)
        except FileNotFoundError:
            pass
    fs.invalidate_cache()


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _remove_s3(fs, p: str) -> None:
    """The object `p` and every object under `p/`, placeholders (keys ending in "/")
    included, with S3's own listing and batch delete. (s3fs's recursive rm, in the 2025
    releases that Beam 2.70's dependencies allow, leaves the placeholder objects.)"""
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(p)

    async def remove() -> None:
        keys, token = [key], None
        while True:
            page = await fs._call_s3("list_objects_v2", Bucket=bucket, Prefix=key + "/",
                                     **({"ContinuationToken": token} if token else {}))
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
        for i in range(0, len(keys), 1000):  # S3's batch limit
            await fs._call_s3("delete_objects", Bucket=bucket, Delete={
                "Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})

    sync(fs.loop, remove)


def remove_file(root: str, rel: str) -> None:
    """Deletes the file `rel` under `root` and the folders it leaves empty (up to `root`);
    missing is fine. (Object stores have no empty folders.)"""
    remove_tree(join(root, rel))
    base = local_path(root)
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
    local = local_path(path)
    if local is not None:
        return open(local, "rb")
    fs, p = remote_fs(path)
    return fs.open(p, "rb")


def walk_files(root: str) -> list[str]:
    """Sorted paths (relative to `root`, with "/") of every file under `root`, local or
    remote; placeholder objects are left out."""
    local = local_path(root)
    if local is not None:
        out = []
        for dirpath, _, names in os.walk(local):
            for n in names:
                rel = os.path.relpath(os.path.join(dirpath, n), local)
                out.append(rel.replace(os.sep, "/"))
        return sorted(out)
    fs, p = remote_fs(root)
    base = p.rstrip("/") + "/"
    return sorted(f[len(base):] for f in fs.find(base, withdirs=False)
                  if f.startswith(base) and not f.endswith("/") and len(f) > len(base))


def download_tree(root: str, target: str, skip: tuple[str, ...] = ()) -> int:
    """Copies every file under the remote folder `root` into the local folder `target`,
    except those under the top-level entries `skip`; returns the number of files.

    Names that would leave `target` (absolute, `..`) are not copied."""
    fs, p = remote_fs(root)
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
