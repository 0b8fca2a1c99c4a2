"""Storage: URLs, fetching assets (HTTP with retries, fsspec), atomic writes, listings.

Modules: `urls` (schemes, redaction, resolving), `files` (atomic writes, reads, listings
and deletion on a local disk, gs:// and s3://), `http` (the retrying session, the release
stream), `fetch` (`Fetcher`, assets for a worker), `pickles` (pickle streams and packed
elements for temporary state).

Pure Python: imports `transforms.model` only (and requests, fsspec), never Beam. Imported
by `state`, the Beam adapters and `pipeline` (`release` and `formats` work on streams and
bytes, never on URLs). The names below are the package's public interface
(`from transforms import storage`).
"""

from transforms.storage.fetch import Fetcher
from transforms.storage.files import (
    check_output,
    check_writable,
    download_tree,
    list_names,
    open_atomic,
    open_read,
    read_bytes,
    remove_file,
    remove_tree,
    walk_files,
    write_bytes,
)
from transforms.storage.http import (
    BACKOFF_FACTOR,
    BACKOFF_JITTER,
    BACKOFF_MAX,
    MAX_ASSET_BYTES,
    MAX_REDIRECTS,
    RETRY_STATUSES,
    backoff,
    http_session,
    open_release,
)
from transforms.storage.urls import (
    REMOTE_SCHEMES,
    is_remote,
    join,
    public_url,
    redact,
    resolve,
    scheme,
    stable_url,
)
