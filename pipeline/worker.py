"""SDK worker process for local multi-process runs: Beam's own worker, quieter.

The FnApiRunner starts one of these per core (`python -m pipeline.worker`). It is Beam's
`sdk_worker_main` unchanged except for the default log level: WARNING instead of INFO, so a
local export does not print a dozen channel messages per worker.
"""

import logging
import sys

from apache_beam.runners.worker import sdk_worker_main

import pipeline  # noqa: F401  (installs the harmless-message filter first)


def main() -> None:
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
