"""What every local Ray ddx starts is given, and whether an address answers: no Ray import.

Shared by :mod:`orchestrator.cluster.runtime` (the embedded Ray, connecting) and
:mod:`orchestrator.cluster.local_ray` (``ddx up``), which must read and set the environment before
Ray is imported (Ray reads ``RAY_AUTH_MODE`` once, at import).
"""

from __future__ import annotations

import math
import os
import socket

from orchestrator.errors import UserError

#: environment that keeps Ray Train/Tune quiet and quick on a laptop; users may override each
RAY_DEFAULT_ENV = {
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_DEDUP_LOGS": "1",
    "TUNE_GLOBAL_CHECKPOINT_S": "5",
    # trials report progress (distillation step, evaluations done) before their final metric
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "RAY_TRAIN_V2_ENABLED": "1",
    # Train's default (60 s) is shorter than a loaded laptop takes to start a worker that imports
    # torch, and than an autoscaler takes to add a node; a slow start is not a failure
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "900",
}


#: Ray settings of an embedded local Ray. Ray prestarts one idle worker per CPU for the
#: driver's runtime environment; every ddx task runs in a trial's environment (Tune gives trials
#: their own), so those workers never serve and only take ~1 s of CPU from the start-up (the
#: warm-up's imports, Tune's, the first trial's). Workers still start on demand.
EMBEDDED_SYSTEM_CONFIG = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}

#: the custom resource trial drivers hold on a cluster's head node (see cluster.yaml); the
#: embedded local Ray defines it too, so a cluster sweep file also runs on a laptop
DRIVER_RESOURCE = "ddx_driver"
LOCAL_DRIVER_SLOTS = 1000


#: the port Ray Client listens on when a ``ray://`` address names none (Ray's default)
RAY_CLIENT_DEFAULT_PORT = 10001
#: what an address may be, for error lines
ADDRESS_FORMS = "give auto, HOST:PORT or ray://HOST:PORT (omit --address for a local Ray)"


def address_endpoint(address: str) -> tuple[str, int] | None:
    """The ``(host, port)`` a Ray address names; None for ``auto`` (Ray looks for one on this machine).

    ``HOST:PORT`` is a cluster's GCS, ``ray://HOST[:PORT]`` its Ray Client server (port 10001
    when none is given). Anything else is a :class:`UserError` naming what is missing: Ray's own
    parse of such an address logs a traceback, and a ``ray://`` address without a host waits
    for Ray Client's 30 s connection timeout before it fails.
    """
    if address == "auto":
        return None
    client = address.startswith("ray://")
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or "]" in port:  # no port given (an IPv6 host's own colons are inside [ ])
        host, port = target, str(RAY_CLIENT_DEFAULT_PORT) if client else ""
    host = host.strip("[]")
    problems = [
        (not host, "no host"),
        (any(c.isspace() for c in host), "a space in the host"),
        (not port, "no port"),
        (not port.isdigit(), f"port {port!r} is not a number"),
    ]
    problem = next((what for wrong, what in problems if wrong), None)
    if problem is not None:
        raise UserError(f"not a Ray address: {address!r} ({problem}); {ADDRESS_FORMS}", key="--address")
    return host, int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (one line) on a malformed address (:func:`address_endpoint`), when nothing
    listens where it points, or when what listens there does not speak gRPC.

    ``ray.init`` retries an address where nothing answers — or where something else answers: a
    dashboard's port (8265), an SSH port, a service that never replies — for minutes before it
    gives up; each is a mistyped address (or a cluster not started), which the user should hear
    about at once. A Ray cluster's GCS and its Ray Client server are gRPC servers, so a gRPC
    call that gets any answer from the server (even "no such method") means Ray's turn; a
    refused handshake or silence does not. ``auto`` is left to Ray, and so is the gRPC step of a
    cluster with TLS (``RAY_USE_TLS``), whose handshake needs its certificates.
    """
    endpoint = address_endpoint(address)
    if endpoint is None:
        return
    host, port = endpoint
    fix = "fix the address (--address or RAY_ADDRESS; omit both for a local Ray)"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UserError(
            f"cannot connect to Ray at {address!r}: nothing answers on {host}:{port} ({reason}); start the cluster "
            f"(ray start --head) or {fix}",
            key="--address",
        ) from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return
    problem = _grpc_problem(host, port, timeout)
    if problem is not None:
        raise UserError(
            f"cannot connect to Ray at {address!r}: {host}:{port} answers, but not as Ray ({problem}); a Ray head "
            f"serves HOST:6379 (ray start --port) and ray://HOST:10001, its dashboard 8265: {fix}",
            key="--address",
        )


def _grpc_problem(host: str, port: int, timeout: float) -> str | None:
    """None when a gRPC server answers on ``host:port`` (any status but unavailable or silence), else why not."""
    import grpc

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")  # bytes in, bytes out
        try:
            check(b"", timeout=timeout)
        except grpc.RpcError as err:
            code = err.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return f"no gRPC answer within {timeout:g} s"
            if code == grpc.StatusCode.UNAVAILABLE:
                return " ".join(str(err.details() or code.name).split())[:200]
    return None


#: the resources Ray defines itself (custom ones are any other name a node declares)
RAY_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


def token_problem(token: dict[str, float]) -> str | None:
    """Why ``resources.trial_resources`` (the token a trial driver holds) cannot be Ray's, or None:
    a built-in resource in the wrong case (``cpu`` would be a custom resource no node declares), a
    blank name, an amount that is negative or not finite, or no positive amount."""
    for name, amount in token.items():
        builtin = next((b for b in RAY_RESOURCES if b.lower() == name.lower()), None)
        if builtin is not None and builtin != name:
            return (
                f"{name!r} is not Ray's {builtin!r}: resource names are case-sensitive ({name!r} would be a "
                f"custom resource, which no node declares); write {builtin}"
            )
        if not name.strip():
            return "a resource needs a name (e.g. {CPU: 0.01})"
        if not (math.isfinite(amount) and amount >= 0):
            return f"{name}: must be a finite number ≥ 0 (got {amount:g})"
    if not token or all(x <= 0 for x in token.values()):
        return "needs a positive token resource, e.g. {CPU: 0.01} ({CPU: 0} is rejected by Ray)"
    return None
