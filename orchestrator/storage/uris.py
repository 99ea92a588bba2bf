"""Storage URIs judged without the network: the schemes and query keys pyarrow.fs accepts, and an
endpoint that refuses connections.

``ddx validate`` checks a sweep's ``storage`` and ``dataset.root`` here, ``ddx evaluate`` its
``--out``/``--storage``, and every check of a location (:func:`orchestrator.storage.locations.check_storage`)
starts here, so a mistyped scheme or query key is one line with a did-you-mean before anything
is asked of a store (pyarrow reports it only when the location is first opened).

What pyarrow accepts (``pyarrow.fs.FileSystem.from_uri``, Arrow's ``FileSystemFromUri``): the
schemes ``file``, ``s3``, ``gs``/``gcs``, ``hdfs``/``viewfs``, ``abfs``/``abfss`` (and ``mock``, an
in-memory test store), plus ``fsspec+<protocol>://`` and ``hf://`` through fsspec. The query
keys each filesystem's ``FromUri`` reads — ``S3Options::FromUri``, ``GcsOptions::FromUri``,
``AzureOptions::ExtractFromUriQuery`` (its own keys and a SAS token's) — are listed below; any
other key there is refused ("Unexpected query parameter"). A ``file://`` URI ignores its query and
an ``hdfs://`` one passes unknown keys to Hadoop's configuration, so neither is checked.

Pure Python (no pyarrow, no Ray): the spec's checks import it.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
from urllib.parse import parse_qsl, urlsplit

from orchestrator.storage import time_limit

#: ``S3Options::FromUri``'s query keys
S3_QUERY_KEYS = (
    "region",
    "scheme",
    "endpoint_override",
    "allow_delayed_open",
    "allow_bucket_creation",
    "allow_bucket_deletion",
    "tls_ca_file_path",
    "tls_ca_dir_path",
    "tls_verify_certificates",
    "smart_defaults",
)
#: ``GcsOptions::FromUri``'s query keys
GCS_QUERY_KEYS = ("location", "scheme", "endpoint_override", "retry_limit_seconds")
#: ``AzureOptions::ExtractFromUriQuery``'s own keys, and the SAS token parameters it also takes
AZURE_QUERY_KEYS = (
    "blob_storage_authority",
    "dfs_storage_authority",
    "credential_kind",
    "tenant_id",
    "client_id",
    "client_secret",
    "enable_tls",
    "background_writes",
)
AZURE_SAS_KEYS = (
    "sv", "ss", "sr", "st", "se", "sp", "si", "sip", "spr", "skoid", "sktid", "srt", "skt", "ske",
    "skv", "sks", "saoid", "suoid", "scid", "sdd", "ses", "sig", "rscc", "rscd", "rsce", "rscl", "rsct",
)  # fmt: skip
#: scheme → the query keys its filesystem reads (None: any key passes)
QUERY_KEYS: dict[str, tuple[str, ...] | None] = {
    "file": None,
    "s3": S3_QUERY_KEYS,
    "gs": GCS_QUERY_KEYS,
    "gcs": GCS_QUERY_KEYS,
    "hdfs": None,
    "viewfs": None,
    "abfs": AZURE_QUERY_KEYS + AZURE_SAS_KEYS,
    "abfss": AZURE_QUERY_KEYS + AZURE_SAS_KEYS,
}
#: schemes pyarrow reads through fsspec (``fsspec+<protocol>`` too)
FSSPEC_SCHEMES = ("hf",)
#: query keys whose value Arrow parses as a boolean (``ParseBoolean``: true/false/1/0, any case)
BOOLEAN_KEYS = {
    "allow_delayed_open",
    "allow_bucket_creation",
    "allow_bucket_deletion",
    "tls_verify_certificates",
    "enable_tls",
    "background_writes",
}
#: schemes that look like storage but are not one ddx can keep results in
NOT_STORES = {
    "mock": "pyarrow's mock:// is an in-memory test store (what is written there is gone when the process ends)",
    "http": "pyarrow reads no http(s) URL",
    "https": "pyarrow reads no http(s) URL",
}
_S3_COMPATIBLE = "an S3-compatible server is s3://BUCKET/PREFIX?endpoint_override=HOST:PORT&scheme=http"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


#: what an empty storage location (in a sweep file or on the command line) is told
EMPTY_LOCATION = "empty; give a folder or a URI (e.g. ./ddx_results or s3://bucket/prefix)"


def check_location(location: str) -> str:
    """``location`` as a validator takes it: not blank, and when a URI one pyarrow can open (its scheme
    and query keys: :func:`uri_problem`); a ValueError saying why otherwise."""
    if not location.strip():
        raise ValueError(EMPTY_LOCATION)
    problem = uri_problem(location)
    if problem is not None:
        raise ValueError(problem)
    return location


def _unknown_scheme(scheme: str) -> str:
    """The line for a scheme pyarrow does not read: a did-you-mean for one close to a known scheme
    (any case: pyarrow's are lower-case), the known ones, and for an http look-alike what to write."""
    known = sorted(QUERY_KEYS)
    close = [k for k in known if k == scheme.lower()] or difflib.get_close_matches(scheme.lower(), known, 1, 0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    what = "scheme" if _SCHEME.match(scheme) else "scheme (not a URI scheme's characters)"
    line = f"unknown storage {what} {scheme!r}{hint}; pyarrow reads {', '.join(QUERY_KEYS)} (or a local path)"
    if not close and difflib.get_close_matches(scheme.lower(), ["http", "https"], 1, 0.6):
        line += f", and no http(s) URL: {_S3_COMPATIBLE}"
    return line


def uri_problem(location: str) -> str | None:
    """Why pyarrow cannot open the storage URI ``location`` (scheme, query keys and values), or None;
    a local path (no ``://``) is None. Asks no network."""
    if "://" not in location:
        return None
    scheme = location.split("://", 1)[0]
    known = ", ".join(QUERY_KEYS)
    if scheme.startswith("fsspec+") or scheme in FSSPEC_SCHEMES:
        import importlib.util

        if importlib.util.find_spec("fsspec") is None:
            return f"{scheme}:// is read through fsspec, which is not installed (pip install fsspec)"
        return None
    if scheme in NOT_STORES:
        fix = _S3_COMPATIBLE if scheme.startswith("http") else f"use one of {known}"
        return f"{scheme}:// is not a storage: {NOT_STORES[scheme]}; {fix}"
    if scheme not in QUERY_KEYS:
        return _unknown_scheme(scheme)
    parts = urlsplit(location)
    if scheme in ("s3", "gs", "gcs", "abfs", "abfss") and not parts.netloc and parts.path.strip("/"):
        return f"no bucket: write {scheme}://BUCKET/PREFIX (the bucket is the URI's host part)"
    keys = QUERY_KEYS[scheme]
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if keys is not None and key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unknown query key {key!r} for {scheme}://{hint}; pyarrow reads {', '.join(keys)}"
        if key in BOOLEAN_KEYS and value.lower() not in ("true", "false", "1", "0"):
            return f"query key {key}={value!r}: expected true or false"
        if key == "scheme" and value not in ("http", "https"):
            return f"query key scheme={value!r}: expected http or https"
        if key == "retry_limit_seconds" and not _positive(value):
            return f"query key retry_limit_seconds={value!r}: expected a positive number of seconds"
    return None


def _positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def endpoint(location: str) -> tuple[str, int] | None:
    """The (host, port) an ``s3://`` or ``gs://`` URI's client connects to when an endpoint is given
    (``endpoint_override``, or for S3 ``$AWS_ENDPOINT_URL_S3`` / ``$AWS_ENDPOINT_URL``, which pyarrow
    reads too); None for the provider's own endpoint or any other location."""
    if "://" not in location:
        return None
    scheme = location.split("://", 1)[0]
    if scheme not in ("s3", "gs", "gcs"):
        return None
    query = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
    given = query.get("endpoint_override")
    if not given and scheme == "s3":
        given = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not given:
        return None
    protocol = query.get("scheme", "https")
    if "://" in given:
        protocol, given = given.split("://", 1)
    try:
        address = urlsplit(f"//{given}")
        host, port = address.hostname, address.port
    except ValueError:  # a port that is not a number: pyarrow's own check says so
        return None
    if not host:
        return None
    return host, port or (80 if protocol == "http" else 443)


def unreachable(host: str, port: int, timeout: float = 2.0) -> str | None:
    """Why ``host:port`` cannot be connected to at all — nothing listens there (connection refused) or
    the host name does not exist — or None (connected, or no answer within ``timeout`` s: whoever asks
    the server next decides). One TCP connect, no request."""

    def connect() -> str | None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return None
        except ConnectionRefusedError:
            return f"nothing listens at {host}:{port} (connection refused)"
        except socket.gaierror as err:
            return f"no such host {host!r}" if err.errno == socket.EAI_NONAME else None
        except OSError:  # unreachable, timed out: the server's own check answers
            return None

    try:
        return time_limit.within(timeout + 1.0, connect, name="ddx-endpoint-probe")
    except time_limit.NoAnswer:  # a name lookup that does not answer
        return None


def refused(location: str, timeout: float = 2.0) -> str | None:
    """Why the endpoint of ``location`` (see :func:`endpoint`) cannot be connected to at all, with what
    to fix, or None (:func:`unreachable`; also None when no endpoint is given).

    A refused connection is final, but the S3 client retries it for ~14 s before it reports.
    """
    target = endpoint(location)
    problem = None if target is None else unreachable(*target, timeout=timeout)
    return None if problem is None else f"{problem}; start the server or fix the endpoint"


__all__ = [
    "AZURE_QUERY_KEYS",
    "AZURE_SAS_KEYS",
    "EMPTY_LOCATION",
    "GCS_QUERY_KEYS",
    "QUERY_KEYS",
    "S3_QUERY_KEYS",
    "check_location",
    "endpoint",
    "refused",
    "unreachable",
    "uri_problem",
]
