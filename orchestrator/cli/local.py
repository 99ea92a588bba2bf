"""``ddx up`` / ``ddx down``: a local Ray kept between commands."""

from __future__ import annotations

import typer

from orchestrator.cli.output import console, fail, warn
from orchestrator.errors import UserError


def up(
    cpus: int = typer.Option(None, "--cpus", min=1, help="CPUs it offers (default: all of this machine's)."),
    dashboard: bool = typer.Option(False, "--dashboard", help="Start its dashboard too (on 127.0.0.1)."),
) -> None:
    """Keep a local Ray running: `ddx sweep` and `ddx evaluate` (no --address) then use it and skip
    Ray's start-up (~4-5 s each on 2 CPUs); `ddx down` stops it."""
    from orchestrator.cluster import local_ray

    try:
        local_ray.check_cache_dir()
        kept, started = local_ray.up(cpus=cpus, dashboard=dashboard)
    except UserError as err:
        fail(err)
        return
    if not started:
        console.print(f"a local Ray is already up: {kept.address} ({kept.cpus} CPUs, since {kept.started})")
        if cpus is not None and cpus != kept.cpus:
            warn(f"--cpus {cpus} not applied: it offers {kept.cpus}; `ddx down`, then `ddx up --cpus {cpus}`")
        return
    console.print(f"local Ray up: {kept.address} ({kept.cpus} CPUs); `ddx sweep` and `ddx evaluate` use it")
    if (too_many := local_ray.oversubscription(cpus)) is not None:
        warn(too_many)
    console.print("stop it with `ddx down`")
    if kept.dashboard_url:
        console.print(f"dashboard: {kept.dashboard_url}")
    console.print(f"log: {kept.log}", highlight=False)


def down() -> None:
    """Stop the local Ray that `ddx up` started (its whole process group)."""
    from orchestrator.cluster import local_ray

    try:
        local_ray.check_cache_dir()
        kept = local_ray.down()
    except UserError as err:
        fail(err)
        return
    console.print(f"stopped the local Ray at {kept.address}" if kept else "no local Ray of `ddx up` is running")


__all__ = ["down", "up"]
