"""SDK worker process for local multi-process runs: Beam's own worker, quieter.

The FnApiRunner starts one of these per core (`python -m pipeline.worker`). It is Beam's
`sdk_worker_main` unchanged except for the default log level (WARNING instead of INFO, so a
local export does not print a dozen channel messages per worker) and Ctrl-C, which ends it
quietly (the launcher prints the one line that matters).
"""

import logging
import os
import signal
import sys
import threading
import time

from apache_beam.runners.worker import sdk_worker_main

import pipeline  # noqa: F401  (installs the harmless-message filter first)


def die_with_parent() -> None:
    """Ends this worker the moment the launcher ends (Linux: the kernel kills it; elsewhere a
    watchdog thread notices), so that a launcher stopped by Ctrl-C leaves no worker behind
    printing connection errors."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL) == 0:  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the launcher ended before prctl
                os._exit(130)
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(130)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    # Ctrl-C reaches every process of the terminal's group: the launcher answers it (one
    # line: what was kept, how to go on) and ends; workers end with it, silently.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    if hasattr(sdk_worker_main, "_get_log_level_from_options_dict"):
        original = sdk_worker_main._get_log_level_from_options_dict

        def _level(options: dict) -> int:
            if "default_sdk_harness_log_level" in options:
                return original(options)
            return logging.WARNING

        sdk_worker_main._get_log_level_from_options_dict = _level
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger(sdk_worker_main.__name__).setLevel(logging.ERROR)  # startup chatter
    sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
    main()
