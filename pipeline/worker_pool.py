"""SDK worker pool for portable runners (Flink, Spark) with `--environment_type EXTERNAL`.

    python -P -m pipeline.worker_pool --service_port 50000

and the export with `--environment_type EXTERNAL --environment_config HOST:50000`. Each
Flink task manager or Spark executor asks the pool for SDK workers; the pool starts each as
a process of this interpreter (`python -P -m pipeline.worker_pool --worker ...`), so the
workers import the `pipeline` and `transforms` installed next to it (a pipeline's
`--setup_file` is not applied to EXTERNAL workers). `scripts/cluster.sh` starts one for its
local clusters; on a real cluster, run one beside each task manager or executor (a sidecar
container with this package installed, for example).

It is Beam's own `worker_pool_main`, less two problems that break it with more than one
task manager on one pool (found with Beam 2.70):

1. Beam's pool keys its worker processes by worker id and stops them by id on StopWorker,
   but each task manager numbers its environments from 1 ("1-1", "2-1", ...), and a
   StopWorker names no task manager: with two task managers on one pool, one's
   StopWorker("1-1") killed the other's worker, whose task then waited forever for it.
   Here StopWorker stops nothing. A worker ends by itself when its runner closes the
   control channel (which a task manager does just before StopWorker) or goes away, and
   exited workers are reaped. (Stopping a worker only when exactly one live worker had the
   id was not enough: the first task manager's worker may have ended already, leaving the
   other's, just started, as the only one.)
2. Beam's pool starts workers as `python` found on PATH, not its own interpreter (a venv's
   Python is rarely first on the PATH of a cluster daemon): here `sys.executable`.

And it starts every worker with `-P`, so the worker's working directory (whatever the
pool was started in: a checkout of this project, say) never shadows the installed package.
Workers end with the pool.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading

from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.worker import worker_pool_main

_LOGGER = logging.getLogger("pipeline.worker_pool")


class WorkerPool(worker_pool_main.BeamFnExternalWorkerPoolServicer):
    """Beam's pool servicer with unique worker keys and this interpreter (see above)."""

    _lock = threading.Lock()

    def _reap(self) -> None:
        for key, proc in list(self._worker_processes.items()):
            if proc.poll() is not None:
                del self._worker_processes[key]

    def StartWorker(self, request, context):  # noqa: N802 (gRPC method name)
        command = [sys.executable, "-P", "-m", "pipeline.worker_pool", "--worker",
                   "--control_endpoint", request.control_endpoint.url,
                   "--worker_id", request.worker_id,
                   "--state_cache_size", str(self._state_cache_size),
                   "--data_buffer_time_limit_ms", str(self._data_buffer_time_limit_ms)]
        try:
            proc = subprocess.Popen(command, close_fds=True, stdin=subprocess.DEVNULL)
        except OSError as e:
            return beam_fn_api_pb2.StartWorkerResponse(error=f"cannot start an SDK worker: {e}")
        with self._lock:
            self._reap()
            # A unique key: Beam's exit hook stops whatever is left in this dict.
            self._worker_processes[f"{request.worker_id}@{proc.pid}"] = proc
        _LOGGER.info("started SDK worker %s (pid %d) for %s", request.worker_id, proc.pid,
                     request.control_endpoint.url)
        return beam_fn_api_pb2.StartWorkerResponse()

    def StopWorker(self, request, context):  # noqa: N802 (gRPC method name)
        # The id does not say whose worker it is (see above): the worker ends by itself
        # once its runner has closed the control channel.
        with self._lock:
            self._reap()
        return beam_fn_api_pb2.StopWorkerResponse()


def _run_worker(args: argparse.Namespace) -> None:
    """One SDK worker (a Beam SdkHarness) serving the runner at `--control_endpoint`."""
    from apache_beam.runners.worker.sdk_worker import SdkHarness

    from pipeline.worker import die_with_parent

    die_with_parent()  # the pool stopped (cluster.sh down, a crash): so does its worker
    SdkHarness(args.control_endpoint, worker_id=args.worker_id,
               state_cache_size=args.state_cache_size,
               data_buffer_time_limit_ms=args.data_buffer_time_limit_ms).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.worker_pool",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--service_port", type=int, default=50000,
                        help="port of the pool's gRPC service (default 50000)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--control_endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--worker_id", help=argparse.SUPPRESS)
    parser.add_argument("--state_cache_size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data_buffer_time_limit_ms", type=int, default=-1,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(force=True, level=logging.WARNING if args.worker else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.worker:
        _run_worker(args)
        return
    address, server = WorkerPool.start(use_process=True, port=args.service_port)
    if not address.endswith(f":{args.service_port}") and args.service_port:
        sys.exit(f"python -m pipeline.worker_pool: error: port {args.service_port} is in use")
    _LOGGER.info("SDK worker pool on %s (workers: %s -P -m pipeline.worker_pool --worker)",
                 address, sys.executable)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(0)  # then Beam's exit hook stops the workers still running


if __name__ == "__main__":
    main()
