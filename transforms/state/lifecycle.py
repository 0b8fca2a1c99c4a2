"""The first and the last step of an export in its folder, run by the job itself.

A job that its launcher does not wait for (a Flex Template launch, a job left to run on a
cluster) must still begin and end the export: `begin` replaces the previous export in the
folder before anything is written, `finish` runs once every file is written and marks the
export complete.

Contract:
  * `begin(output, owned, token)`: removes the entries of a previous export in `output`
    (`owned`, as `storage.check_output` finds them; a folder holding anything else is
    refused) and writes the marker `TEMP_DIR/started` holding `token`, a value unique to
    this run. Idempotent within the run: when the marker already holds `token`, nothing
    is removed. An engine re-running the step (a Spark stage recomputed, a job restarted
    after losing a worker) so never deletes what this run has written.
  * `finish(output, generation, fp)`: removes the temporary folder (`TEMP_DIR`: COCO
    fragments, chunk parts, the marker) and, in a local folder, the temporary files of
    writers killed mid-write (`storage` writes `.tmp-*~` then renames; a worker lost by the
    engine leaves one behind, its work done again elsewhere); then, with a fingerprint,
    publishes ledger generation `generation` (`ledger.write_state`, the last write: an
    export is complete once `.export-state/state.json` exists and `TEMP_DIR` is gone).
    Idempotent.
  * Nothing here imports Beam.
"""

from __future__ import annotations

import os

from transforms import storage
from transforms.model import paths
from transforms.state import ledger
from transforms.storage.urls import local_path

STARTED = "started"
_STRAY_PREFIX, _STRAY_SUFFIX = ".tmp-", "~"  # storage's temporary names


def begin(output: str, owned: tuple[str, ...], token: str) -> str:
    """Replaces a previous export in `output` (once per run); returns `token`."""
    marker = storage.join(output, paths.TEMP_DIR, STARTED)
    try:
        if storage.read_bytes(marker).decode("utf-8", "replace") == token:
            return token  # this run began already: keep what it has written
    except OSError:
        pass
    for entry in storage.check_output(output, owned):
        storage.remove_tree(storage.join(output, entry))
    storage.write_bytes(marker, token.encode("utf-8"))
    return token


def remove_strays(output: str) -> int:
    """Deletes the temporary files (`.tmp-*~`) of killed writers in the local folder
    `output` (object stores have none: an unfinished upload never becomes an object);
    returns how many."""
    local = local_path(output)
    if local is None or not os.path.isdir(local):
        return 0
    removed = 0
    for folder, _, files in os.walk(local):
        for name in files:
            if name.startswith(_STRAY_PREFIX) and name.endswith(_STRAY_SUFFIX):
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed


def finish(output: str, generation: int | None = None,
           fp: ledger.Fingerprint | None = None) -> str:
    """The export's last step (see the contract); returns the state file's path, or the
    output folder when no state is published here."""
    storage.remove_tree(storage.join(output, paths.TEMP_DIR))
    remove_strays(output)
    if fp is None:
        return output
    ledger.write_state(output, generation or 0, fp)
    return storage.join(ledger.state_dir(output), ledger.STATE_JSON)
