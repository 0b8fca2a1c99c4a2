"""URLs and paths: schemes, redaction, resolving asset URLs, joining output paths.

Contract:
  * A relative asset URL is resolved against the release file's location (a directory for a
    local release, `urljoin` for a remote one). A relative URL in a gs:// or s3:// release
    stays in its bucket, next to the release.
  * URLs are redacted (query string, fragment and credentials dropped) in every message:
    signed URLs carry their secrets there.
"""

from __future__ import annotations

import os
import posixpath
import urllib.parse

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


def local_path(uri: str) -> str | None:
    s = scheme(uri)
    if s == "file":
        return urllib.parse.unquote(urllib.parse.urlsplit(uri).path)
    if s == "":
        return uri
    return None


def join(base: str, *parts: str) -> str:
    if scheme(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)
