"""Where the flows run: Prefect's temporary API (given time to start on a busy host) and the
task runner (threads, or Dask) that their read and merge tasks fan out through.

This is Prefect plumbing shared by the CLI and the flows, kept apart from the flows themselves so
they read as the sequence of their stages.
"""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

EPHEMERAL_STARTUP_TIMEOUT_SECONDS = 180
"""How long a run without ``PREFECT_API_URL`` waits for the temporary Prefect API it starts.
Prefect's default (20 s) is too short on a busy 2-core host, where the start alone takes 8-14 s
idle; a user's own ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` always wins."""

_STARTUP_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"


class PrefectUnavailable(RuntimeError):
    """The temporary Prefect API did not start, even on a second try; the message says what to
    do (nothing of the run has started)."""


def is_startup_timeout(error: BaseException) -> bool:
    """Whether ``error`` is Prefect giving up on starting its temporary API server."""
    return isinstance(error, RuntimeError) and str(error).startswith(_STARTUP_TIMEOUT)


@contextmanager
def patient_ephemeral_api() -> Iterator[None]:
    """Give the temporary Prefect API :data:`EPHEMERAL_STARTUP_TIMEOUT_SECONDS` to start,
    unless the user set Prefect's own setting (in the environment or the Prefect profile)."""
    from prefect.settings import (
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings,
        temporary_settings,
    )

    if "startup_timeout_seconds" in get_current_settings().server.ephemeral.model_fields_set:
        yield
        return
    timeout = {PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: EPHEMERAL_STARTUP_TIMEOUT_SECONDS}
    with temporary_settings(updates=timeout):
        yield


def call_flow(flow_: Callable[..., Any], **parameters: Any) -> Any:
    """Call a flow; if Prefect's temporary API times out starting, stop it and try once more.

    The time-out happens before the flow run exists, so the second try starts nothing twice. A
    second time-out is :class:`PrefectUnavailable`, saying what to do.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    waited = EPHEMERAL_STARTUP_TIMEOUT_SECONDS
    for _attempt in range(2):
        with patient_ephemeral_api():
            waited = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
            try:
                return flow_(**parameters)
            except RuntimeError as exc:
                if not is_startup_timeout(exc):
                    raise
        SubprocessASGIServer().stop()  # the half-started server: the next try starts clean
    raise PrefectUnavailable(
        f"Prefect's temporary API server did not start within {waited} s, twice (a busy "
        "host?); start a Prefect server (prefect server start) and export "
        "PREFECT_API_URL=http://127.0.0.1:4200/api, or raise "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    )


def default_task_runner() -> TaskRunner[Any]:
    """Threads in the flow's process: enough to overlap S3 fetches; decoding is mostly one core."""
    return ThreadPoolTaskRunner(max_workers=max(2, os.cpu_count() or 1))


DASK_LOG_LEVEL_ENV = "DASK_LOGGING__DISTRIBUTED"


def quiet_dask(verbose: bool = False) -> None:
    """Dask's ``distributed`` loggers at WARNING unless ``verbose``: a local cluster otherwise
    prints some thirty INFO lines (scheduler, nanny and worker start-up and shutdown) around the
    run's own. Set through dask's configuration variable before ``distributed`` is imported, so
    the worker processes it spawns inherit it; the user's own setting wins."""
    import logging

    level = "info" if verbose else "warning"
    if verbose:
        os.environ[DASK_LOG_LEVEL_ENV] = level
    else:
        os.environ.setdefault(DASK_LOG_LEVEL_ENV, level)
    logging.getLogger("distributed").setLevel(os.environ[DASK_LOG_LEVEL_ENV].upper())


def make_task_runner(
    kind: str = "thread",
    dask_address: str | None = None,
    dask_workers: int | None = None,
    verbose: bool = False,
) -> TaskRunner[Any]:
    """``thread`` (default) or ``dask``: an existing scheduler at ``dask_address``, else a local
    cluster of ``dask_workers`` single-threaded processes (its INFO logging quieted unless
    ``verbose``: :func:`quiet_dask`)."""
    if kind == "thread":
        return default_task_runner()
    if kind != "dask":
        raise ValueError(f"unknown task runner {kind!r}; expected thread or dask")
    quiet_dask(verbose)
    from prefect_dask.task_runners import DaskTaskRunner

    if dask_address:
        runner: TaskRunner[Any] = DaskTaskRunner(address=dask_address)
        return runner
    workers = dask_workers or os.cpu_count() or 1
    cluster = {"n_workers": workers, "threads_per_worker": 1, "processes": True,
               "dashboard_address": None}  # fmt: skip
    local: TaskRunner[Any] = DaskTaskRunner(cluster_kwargs=cluster)
    return local
