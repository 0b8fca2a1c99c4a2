"""Reading release files: bounded JSON events, layouts, checks, selection, sample parsing.

Modules, bottom to top: `jsonstream` (JSON events with bounded memory), `values` (JSON
values in messages), `selection` (filters and skip rules), `census` (what the filters would
select, counted by the scan), `scan` (the header scan before any work), `layouts` (v1,
transitional and v2 headers -> `ReleaseInfo`), `samples` (one raw sample -> `Sample`),
`splits` (train/val/test), `decisions` (every sample's fate, in release order).

Pure Python: imports `transforms.model` only (and ijson, numpy), never Beam. Imported by
`transforms.state`, the Beam adapters and `pipeline`. The names below are the package's
public interface (`from transforms import release; release.scan_header(...)`).
"""

from transforms.release.census import Census
from transforms.release.census import check as check_selection
from transforms.release.decisions import Decision, decide, plan
from transforms.release.jsonstream import (
    MAX_DEPTH,
    MAX_TOKEN_BYTES,
    MAX_VALUE_BYTES,
    iter_raw_samples,
)
from transforms.release.layouts import (
    DEFAULT_LABELSET,
    DEFAULT_OWNER,
    ReleaseInfo,
    parse_categories,
    release_info,
)
from transforms.release.samples import MAX_INSTANCE_ID, parse_sample
from transforms.release.scan import Duplicates, scan_header
from transforms.release.selection import (
    LABEL_STATUSES,
    UNLABELED,
    Selection,
    check_identity,
    filter_reason,
    identity,
    metadata_text,
    parse_metadata_filters,
    sample_status,
    skip_reason,
)
from transforms.release.splits import SplitPlan, SplitSpec, parse_ratios
