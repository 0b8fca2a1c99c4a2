"""URLs and paths: schemes, redaction, resolving asset URLs, joining output paths.

Contract:
  * A relative asset URL is resolved against the release file's location (a directory for a
    local release, `urljoin` for a remote one). A relative URL in a gs:// or s3:// release
    stays in its bucket, next to the release.
  * URLs are redacted (query string, fragment and credentials dropped) in every message:
    signed URLs carry their secrets there. A URL kept in an output (`public_url`) loses its
    signing parameters (AWS, GCS, Azure, CloudFront; `stable_url`) and credentials.
"""

from __future__ import annotations

import os
import posixpath
import urllib.parse
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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


# Query parameters that sign or authorise a URL rather than name what it points to.
_SIGNING = frozenset({
    "awsaccesskeyid", "signature", "expires", "policy", "key-pair-id",  # AWS v2, CloudFront
    "googleaccessid",  # GCS v2
    "token", "access_token", "sig",
})
_SIGNING_PREFIXES = ("x-amz-", "x-goog-")
# Azure shared access signatures: these only when the URL carries `sig`.
_AZURE_SAS = frozenset({"sv", "ss", "srt", "sp", "se", "st", "spr", "sr", "sdd", "si",
                        "skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid",
                        "scid", "rscc", "rscd", "rsce", "rscl", "rsct"})


def stable_url(url: str) -> str:
    """`url` without its signing parameters (the rest of the query kept, in order)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    azure = any(k.lower() == "sig" for k, _ in pairs)
    kept = [(k, v) for k, v in pairs
            if not (k.lower() in _SIGNING or k.lower().startswith(_SIGNING_PREFIXES)
                    or (azure and k.lower() in _AZURE_SAS))]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def public_url(url: str | None) -> str | None:
    """`url` as it may be shown or kept (COCO's coco_url, the manifest): without signing
    parameters (`stable_url`) and without user:password@ credentials. The rest is kept, so
    a public asset's URL still fetches it."""
    if not url:
        return None
    url = stable_url(url)
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=host))
