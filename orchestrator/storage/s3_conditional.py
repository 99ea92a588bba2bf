"""Conditional writes on S3 and S3-compatible stores, through ``botocore`` (the ``s3`` extra).

pyarrow's S3 filesystem has no conditional requests, so the lease objects are written with
``botocore``, addressed exactly as pyarrow addresses the location (``?endpoint_override=…``,
``scheme``, ``region``, credentials in the URI or the usual environment, ``AWS_ENDPOINT_URL``):
``PutObject`` with ``If-None-Match: *`` creates an object only where none is,
``PutObject``/``DeleteObject`` with ``If-Match: <ETag>`` replace or delete it only if nobody
wrote it since (AWS S3 since 2024, MinIO, moto). :func:`probe` checks once that the store
really refuses a failed condition; a store that refuses conditional deletes (or ignores them)
gets a read-compare-delete instead, which is safe for a lease's holder (nobody else writes its
version while its lease is live).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from orchestrator.storage.conditional import Current, StoreError
from orchestrator.storage.locations import filesystem


@dataclass(frozen=True)
class _S3Target:
    """Where an ``s3://`` location's requests go, and as whom."""

    endpoint: str | None  # None: AWS (or $AWS_ENDPOINT_URL, which botocore reads itself)
    region: str | None
    access_key: str | None
    secret_key: str | None


def _s3_target(location: str) -> tuple[_S3Target, str, str]:
    """(target, bucket, key) of an ``s3://`` URI in the forms pyarrow accepts."""
    parts = urlsplit(location)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    endpoint = query.get("endpoint_override")
    if endpoint and "://" not in endpoint:
        endpoint = f"{query.get('scheme', 'https')}://{endpoint}"
    fs, path = filesystem(location)
    region = getattr(fs, "region", None) or query.get("region") or None
    bucket, _, key = path.partition("/")
    user = unquote(parts.username) if parts.username else None
    secret = unquote(parts.password) if parts.password else None
    return _S3Target(endpoint, region, user, secret), bucket, key


@lru_cache(maxsize=16)
def _s3_client(target: _S3Target, pid: int) -> Any:
    """A botocore S3 client for ``target``, one per process ``pid`` (a forked child does not
    share its parent's connections)."""
    from botocore.config import Config
    from botocore.session import get_session

    config = Config(
        connect_timeout=10,
        read_timeout=30,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if target.endpoint else {},
        request_checksum_calculation="when_required",  # S3-compatible stores need not know the new checksums
        response_checksum_validation="when_required",
    )
    return get_session().create_client(
        "s3",
        endpoint_url=target.endpoint,
        region_name=target.region,
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        config=config,
    )


def _code(err: Exception) -> tuple[str, int]:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")), int(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
    )


#: a failed condition (412), a concurrent conditional write (409), or no such object (404)
_LOST = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404", "412", "409"}


class S3Objects:
    """Conditional writes through S3's ``If-None-Match`` / ``If-Match`` requests (``botocore``)."""

    atomic = True

    def __init__(self, conditional_delete: bool = True) -> None:
        self.conditional_delete = conditional_delete

    def _call(self, location: str, op: str, **kw: Any) -> dict[str, Any] | None:
        """``op`` on the location's object; None when its condition failed (or it is gone)."""
        from botocore.exceptions import BotoCoreError, ClientError

        target, bucket, key = _s3_target(location)
        try:
            return getattr(_s3_client(target, os.getpid()), op)(Bucket=bucket, Key=key, **kw)
        except ClientError as err:
            code, status = _code(err)
            if code in _LOST or status in (404, 409, 412):
                return None
            raise StoreError(f"{location}: {op} failed: {err}", code, status) from None
        except BotoCoreError as err:
            raise StoreError(f"{location}: {op} failed: {err}") from None

    def read(self, location: str) -> Current | None:
        got = self._call(location, "get_object")
        if got is None:
            return None
        with contextlib.closing(got["Body"]) as body:
            return Current(body.read(), got["ETag"])

    def create(self, location: str, data: bytes) -> str | None:
        put = self._call(location, "put_object", Body=data, IfNoneMatch="*")
        return None if put is None else put["ETag"]

    def replace(self, location: str, data: bytes, version: str) -> str | None:
        put = self._call(location, "put_object", Body=data, IfMatch=version)
        return None if put is None else put["ETag"]

    def delete(self, location: str, version: str) -> bool:
        if self.conditional_delete:
            return self._call(location, "delete_object", IfMatch=version) is not None
        current = self.read(location)  # the holder deletes its own live lease: only it writes that version
        if current is None or current.version != version:
            return False
        return self._call(location, "delete_object") is not None


def probe(location: str) -> tuple[S3Objects | None, str]:
    """Whether the store of ``location`` honours conditional writes: an object beside it is
    created, created again (must fail), replaced and deleted at a wrong ETag (must fail), then
    deleted. (store or None, why not)."""
    try:
        import botocore
    except ImportError:
        return None, "botocore is not installed (pip install 'ddx[s3]')"
    try:
        _s3_client(_s3_target(location)[0], os.getpid())
    except TypeError:  # a Config option it does not know
        return None, f"botocore {botocore.__version__} is older than 1.36 (pip install 'ddx[s3]')"
    head, sep, query = location.partition("?")
    spot = f"{head.rsplit('/', 1)[0]}/.ddx-lease-probe-{uuid.uuid4().hex[:8]}{sep}{query}"
    store = S3Objects()
    try:
        if store.create(spot, b"1") is None:
            return None, "a conditional create of a new object failed"
        try:
            if store.create(spot, b"2") is not None:
                return None, "it ignores If-None-Match"
            if store.replace(spot, b"3", '"0"') is not None:
                return None, "it ignores If-Match"
            try:  # refused, or ignored (the probe is deleted): the holder's read-compare-delete instead
                store.conditional_delete = store._call(spot, "delete_object", IfMatch='"0"') is None
            except StoreError as err:
                if not err.unsupported:
                    raise
                store.conditional_delete = False
        finally:
            with contextlib.suppress(OSError):
                store._call(spot, "delete_object")
    except StoreError as err:
        if not err.unsupported:
            raise  # no answer, no permission: not a property of the store (the caller sees an OSError)
        return None, f"it refuses conditional requests ({err.code or err.status})"
    return store, ""


__all__ = ["S3Objects", "probe"]
