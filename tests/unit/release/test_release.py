"""Unit tests for transforms/release/ (layouts, validation, selection, samples).

Expectations come from the module's contract and from the spec
(SEGMENTS-RELEASE-AND-EXPORT.md §1, §1.7, §3.2), never from running the code.
"""

from __future__ import annotations

import copy
import json
import re
import time

import pytest

from transforms import release
from transforms.model import errors
from transforms.model.types import Annotation, Category

# --------------------------------------------------------------------------- helpers

CATEGORIES = [
    {"id": 1, "name": "petal", "color": [255, 0, 0], "has_instances": True},
    {"id": 2, "name": "sky", "has_instances": False},
]


def labelled(status="LABELED", annotations=None, bitmap="https://h/b.png"):
    return {
        "label_status": status,
        "attributes": {
            "format_version": "0.1",
            "annotations": [{"id": 1, "category_id": 1}] if annotations is None else annotations,
            "segmentation_bitmap": {"url": bitmap},
        },
    }


def sample(name, labels, metadata=None, url=None, uuid=None):
    s = {
        "uuid": uuid or f"uuid-{name}",
        "name": name,
        "attributes": {"image": {"url": url or f"https://h/{name}"}},
        "labels": labels,
    }
    if metadata is not None:
        s["metadata"] = metadata
    return s


def v2_release(samples=None, categories=None, labelsets=("ground-truth",), **dataset_overrides):
    dataset = {
        "name": "flowers",
        "owner": "jane",
        "description": "",
        "task_type": "segmentation-bitmap",
        "task_attributes": {
            "format_version": "0.1",
            "categories": copy.deepcopy(CATEGORIES) if categories is None else categories,
        },
        "labelsets": [{"name": n, "description": ""} for n in labelsets],
        "samples": [] if samples is None else samples,
    }
    dataset.update(dataset_overrides)
    return {"name": "v1.0", "description": "first release", "dataset": dataset}


def write(tmp_path, content, name="release.json"):
    path = tmp_path / name
    if isinstance(content, (bytes, bytearray)):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def header_of(path):
    with open(path, "rb") as f:
        return release.scan_header(f)


def info_of(tmp_path, content, selection=None):
    path = write(tmp_path, content)
    return release.release_info(header_of(path), selection or release.Selection())


def raw_samples(path, info):
    with open(path, "rb") as f:
        return list(release.iter_raw_samples(f, info.samples_prefix))


def release_error(tmp_path, content, selection=None) -> str:
    with pytest.raises(errors.ReleaseError) as exc:
        info_of(tmp_path, content, selection)
    return str(exc.value)


# --------------------------------------------------------------------------- v2 layout


def test_v2_info_fields(tmp_path):
    rel = v2_release(
        samples=[sample("a.jpg", {"ground-truth": labelled()}), sample("b.jpg", {"ground-truth": None})],
        labelsets=("ground-truth", "predictions"),
    )
    info = info_of(tmp_path, rel)
    assert info.layout == "v2"
    assert info.name == "v1.0"
    assert info.dataset_name == "flowers"
    assert info.owner == "jane"
    assert info.task_type == "segmentation-bitmap"
    assert info.labelsets == ("ground-truth", "predictions")
    assert info.labelset == "ground-truth"  # the default labelset
    assert info.sample_count == 2
    assert info.samples_prefix == "dataset.samples.item"
    assert [c.id for c in info.categories] == [1, 2]
    assert [c.name for c in info.categories] == ["petal", "sky"]
    assert info.categories[0].color == (255, 0, 0)
    assert info.categories[1].color is None
    assert [c.has_instances for c in info.categories] == [True, False]
    # raw keys kept in release order (COCO pass-through)
    assert info.categories[0].raw_dict() == CATEGORIES[0]
    assert list(info.categories[0].raw_dict()) == list(CATEGORIES[0])


def test_v2_samples_prefix_reads_the_samples(tmp_path):
    rel = v2_release(samples=[sample(f"s{i}.jpg", {"ground-truth": None}) for i in range(3)])
    path = write(tmp_path, rel)
    info = release.release_info(header_of(path), release.Selection())
    assert [s["name"] for s in raw_samples(path, info)] == ["s0.jpg", "s1.jpg", "s2.jpg"]


@pytest.mark.parametrize("owner", ["missing", None, ""])
def test_v2_owner_falls_back_to_unknown(tmp_path, owner):
    rel = v2_release()
    if owner == "missing":
        del rel["dataset"]["owner"]
    else:
        rel["dataset"]["owner"] = owner
    assert info_of(tmp_path, rel).owner == "unknown"


def test_v2_highres_task_type_accepted(tmp_path):
    info = info_of(tmp_path, v2_release(task_type="segmentation-bitmap-highres"))
    assert info.task_type == "segmentation-bitmap-highres"
    assert set(info.formats) == {
        "coco-instance", "coco-panoptic", "yolo", "yolo-seg", "instance", "semantic",
        "instance-color", "semantic-color",
    }


def test_v2_other_labelset_selected(tmp_path):
    info = info_of(
        tmp_path,
        v2_release(labelsets=("ground-truth", "predictions")),
        release.Selection(labelset="predictions"),
    )
    assert info.labelset == "predictions"


def test_has_instances_missing_or_null_is_stuff(tmp_path):
    cats = [
        {"id": 1, "name": "thing", "has_instances": True},
        {"id": 2, "name": "missing"},
        {"id": 3, "name": "null", "has_instances": None},
        {"id": 4, "name": "false", "has_instances": False},
    ]
    info = info_of(tmp_path, v2_release(categories=cats))
    assert [c.has_instances for c in info.categories] == [True, False, False, False]
    assert all(isinstance(c.has_instances, bool) for c in info.categories)


def test_fractional_colour_is_rounded_not_rejected(tmp_path):
    cats = [
        {"id": 1, "name": "a", "color": [33.5, 10.0, 0.2]},
        {"id": 2, "name": "b", "color": [254.7, 33.4, 99]},
    ]
    info = info_of(tmp_path, v2_release(categories=cats))
    assert info.categories[0].color == (34, 10, 0)
    assert info.categories[1].color == (255, 33, 99)
    assert all(isinstance(v, int) for c in info.categories for v in c.color)


def test_rgba_colour_cut_to_rgb(tmp_path):
    cats = [{"id": 1, "name": "a", "color": [0, 0, 0, 0]}, {"id": 2, "name": "b", "color": [1, 2, 3, 128]}]
    info = info_of(tmp_path, v2_release(categories=cats))
    assert info.categories[0].color == (0, 0, 0)
    assert info.categories[1].color == (1, 2, 3)


def test_zero_based_and_non_contiguous_category_ids_accepted(tmp_path):
    cats = [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}, {"id": 5, "name": "c"}]
    info = info_of(tmp_path, v2_release(categories=cats))
    assert [c.id for c in info.categories] == [0, 1, 5]


# --------------------------------------------------------------------------- legacy layouts


def test_transitional_layout(tmp_path):
    rel = {
        "name": "r1",
        "dataset": {
            "name": "ds",
            "owner": "o",
            "task_type": "segmentation-bitmap",
            "labelsets": {
                "ground-truth": {"attributes": {"categories": [{"id": 1, "name": "gt-cat"}]}},
                "predictions": {"attributes": {"categories": [{"id": 7, "name": "pred-cat"}]}},
            },
            "samples": [sample("a.jpg", {"ground-truth": labelled()})],
        },
    }
    info = info_of(tmp_path, rel)
    assert info.layout == "transitional"
    assert info.labelsets == ("ground-truth", "predictions")
    assert info.labelset == "ground-truth"
    assert [(c.id, c.name) for c in info.categories] == [(1, "gt-cat")]
    assert info.sample_count == 1
    assert (info.name, info.dataset_name, info.owner) == ("r1", "ds", "o")

    # the categories follow the chosen labelset
    (tmp_path / "p").mkdir()
    info = info_of(tmp_path / "p", rel, release.Selection(labelset="predictions"))
    assert info.labelset == "predictions"
    assert [(c.id, c.name) for c in info.categories] == [(7, "pred-cat")]


def _v1_task(name, cats, task_type="segmentation-bitmap"):
    return {"name": name, "description": "", "task_type": task_type, "attributes": {"categories": cats}}


def test_v1_top_level_tasks_list_and_samples(tmp_path):
    rel = {
        "name": "2020-release",
        "description": "old",
        "created_at": "2020-05-01",
        "tasks": [
            _v1_task("segmentation", [{"id": 0, "name": "bg"}, {"id": 1, "name": "cat"}]),
            _v1_task("other", [{"id": 3, "name": "dog"}]),
        ],
        "samples": [
            {
                "name": "a.jpg",
                "data_type": "IMAGE",
                "attributes": {"image": {"url": "https://h/a.jpg"}},
                "labels": {"segmentation": labelled()},
            },
            {
                "name": "b.jpg",
                "data_type": "IMAGE",
                "attributes": {"image": {"url": "https://h/b.jpg"}},
                "labels": {"segmentation": None},
            },
        ],
    }
    path = write(tmp_path, rel)
    info = release.release_info(header_of(path), release.Selection())
    assert info.layout == "v1"
    assert info.labelsets == ("segmentation", "other")
    assert info.labelset == "segmentation"  # the first task
    assert info.task_type == "segmentation-bitmap"
    assert [(c.id, c.name) for c in info.categories] == [(0, "bg"), (1, "cat")]
    assert info.sample_count == 2
    assert info.owner == "unknown"
    assert [s["name"] for s in raw_samples(path, info)] == ["a.jpg", "b.jpg"]
    # labels are keyed by task name, so the task is the labelset
    statuses = [release.sample_status(s, info.labelset) for s in raw_samples(path, info)]
    assert statuses == ["LABELED", "UNLABELED"]

    info2 = release.release_info(header_of(path), release.Selection(labelset="other"))
    assert info2.labelset == "other"
    assert [(c.id, c.name) for c in info2.categories] == [(3, "dog")]


def test_v1_dataset_tasks_dict_and_dataset_samples(tmp_path):
    rel = {
        "name": "2020-release",
        "dataset": {
            "tasks": {
                "segmentation": {"task_type": "segmentation-bitmap",
                                 "attributes": {"categories": [{"id": 0, "name": "bg"}]}},
                "second": {"task_type": "segmentation-bitmap",
                           "attributes": {"categories": [{"id": 4, "name": "x"}]}},
            },
            "samples": [sample(f"s{i}.jpg", {"segmentation": labelled()}) for i in range(3)],
        },
    }
    path = write(tmp_path, rel)
    info = release.release_info(header_of(path), release.Selection())
    assert info.layout == "v1"
    assert info.labelsets == ("segmentation", "second")
    assert info.labelset == "segmentation"
    assert [(c.id, c.name) for c in info.categories] == [(0, "bg")]
    assert info.sample_count == 3
    assert info.owner == "unknown"
    assert [s["name"] for s in raw_samples(path, info)] == ["s0.jpg", "s1.jpg", "s2.jpg"]


@pytest.mark.parametrize("tasks_under_dataset", [False, True])
@pytest.mark.parametrize("samples_under_dataset", [False, True])
@pytest.mark.parametrize("tasks_as_dict", [False, True])
def test_v1_every_placement(tmp_path, tasks_under_dataset, samples_under_dataset, tasks_as_dict):
    tasks_list = [_v1_task("segmentation", [{"id": 0, "name": "bg"}]),
                  _v1_task("extra", [{"id": 9, "name": "z"}])]
    tasks = ({t["name"]: {k: v for k, v in t.items() if k != "name"} for t in tasks_list}
             if tasks_as_dict else tasks_list)
    samples = [sample(f"s{i}.jpg", {"segmentation": labelled()}) for i in range(4)]
    rel: dict = {"name": "old"}
    dataset: dict = {}
    (dataset if tasks_under_dataset else rel)["tasks"] = tasks
    (dataset if samples_under_dataset else rel)["samples"] = samples
    if dataset:
        rel["dataset"] = dataset
    path = write(tmp_path, rel)
    info = release.release_info(header_of(path), release.Selection())
    assert info.layout == "v1"
    assert info.labelsets == ("segmentation", "extra")
    assert info.labelset == "segmentation"
    assert [(c.id, c.name) for c in info.categories] == [(0, "bg")]
    assert info.sample_count == 4
    assert [s["name"] for s in raw_samples(path, info)] == [f"s{i}.jpg" for i in range(4)]


def test_v1_bad_category_names_the_task_field(tmp_path):
    cats = [{"id": 0, "name": "a"}, {"id": 0, "name": "b"}]
    rel = {"name": "r", "tasks": [_v1_task("segmentation", cats)], "samples": []}
    msg = release_error(tmp_path, rel)
    assert "tasks" in msg and "categories[1].id" in msg


def test_v1_unknown_task_name_lists_tasks(tmp_path):
    rel = {"name": "r", "tasks": [_v1_task("segmentation", [])], "samples": []}
    msg = release_error(tmp_path, rel, release.Selection(labelset="nope"))
    assert "nope" in msg and "segmentation" in msg


def test_v1_unsupported_task_type(tmp_path):
    rel = {"name": "r", "tasks": [_v1_task("pts", [], task_type="pointcloud-cuboid")],
           "samples": []}
    msg = release_error(tmp_path, rel)
    assert "task_type" in msg and "pointcloud-cuboid" in msg


# --------------------------------------------------------------------------- errors


def test_not_json(tmp_path):
    msg = release_error(tmp_path, b"this is not json at all")
    assert "JSON" in msg


def test_invalid_json_token(tmp_path):
    msg = release_error(tmp_path, b'{"name": tru}')
    assert "JSON" in msg


def test_truncated_json_caught_by_header_scan(tmp_path):
    rel = v2_release(samples=[sample(f"s{i}.jpg", {"ground-truth": labelled()}) for i in range(50)])
    data = json.dumps(rel).encode()
    cut = data[: len(data) * 2 // 3]  # cut in the middle of the samples, after the header
    msg = release_error(tmp_path, cut)
    assert "JSON" in msg


def test_truncated_json_message_gives_byte_offset(tmp_path):
    # scan_header's contract: invalid JSON is reported "with the byte offset where the
    # parser stopped".
    rel = v2_release(samples=[sample(f"s{i}.jpg", {"ground-truth": labelled()}) for i in range(50)])
    data = json.dumps(rel).encode()
    cut = data[: len(data) * 2 // 3]
    msg = release_error(tmp_path, cut)
    assert re.search(r"(byte|offset)\D{0,30}\d+", msg, re.IGNORECASE), msg


def test_top_level_list(tmp_path):
    msg = release_error(tmp_path, [v2_release()])
    assert "top level" in msg


@pytest.mark.parametrize("content", [b"", b"   \n"])
def test_empty_file(tmp_path, content):
    msg = release_error(tmp_path, content)
    assert msg.startswith("release file")


def test_dataset_not_an_object(tmp_path):
    msg = release_error(tmp_path, {"name": "r", "dataset": []})
    assert "dataset" in msg


def test_missing_task_type(tmp_path):
    rel = v2_release()
    del rel["dataset"]["task_type"]
    msg = release_error(tmp_path, rel)
    assert "dataset.task_type" in msg and "missing" in msg


@pytest.mark.parametrize("task_type", ["pointcloud-cuboid", "pointcloud-segmentation-sequence",
                                       "multisensor-sequence", "image-segmentation-sequence",
                                       "no-such-task", ""])
def test_unsupported_task_type(tmp_path, task_type):
    msg = release_error(tmp_path, v2_release(task_type=task_type))
    assert "dataset.task_type" in msg
    assert repr(task_type) in msg or task_type in msg
    # tells the user what is supported, and for known task types what to do instead
    assert "segmentation-bitmap" in msg and "keypoints" in msg
    assert ("segments-ai SDK" in msg) == (task_type not in ("no-such-task", ""))


@pytest.mark.parametrize("task_type,formats", [
    ("bboxes", ("coco-instance", "yolo", "yolo-seg")),
    ("vector", ("coco-instance", "coco-keypoints", "yolo", "yolo-seg")),  # points apart
])
def test_vector_task_types_export_coco_instance_and_yolo(tmp_path, task_type, formats):
    assert info_of(tmp_path, v2_release(task_type=task_type)).formats == formats


def test_missing_dataset_name(tmp_path):
    rel = v2_release()
    del rel["dataset"]["name"]
    msg = release_error(tmp_path, rel)
    assert "dataset.name" in msg


def test_unknown_labelset_lists_available(tmp_path):
    msg = release_error(
        tmp_path, v2_release(labelsets=("ground-truth", "predictions")),
        release.Selection(labelset="model-v9"),
    )
    assert "model-v9" in msg
    assert "ground-truth" in msg and "predictions" in msg


def test_default_labelset_absent(tmp_path):
    msg = release_error(tmp_path, v2_release(labelsets=("predictions",)))
    assert "ground-truth" in msg and "predictions" in msg


def test_labelsets_missing(tmp_path):
    rel = v2_release()
    del rel["dataset"]["labelsets"]
    msg = release_error(tmp_path, rel)
    assert "dataset.labelsets" in msg


def test_duplicate_category_id(tmp_path):
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 1, "name": "c"}]
    msg = release_error(tmp_path, v2_release(categories=cats))
    assert "dataset.task_attributes.categories[2].id" in msg
    assert "duplicate" in msg


@pytest.mark.parametrize("bad_id", ["1", None, 1.5, True, [1]])
def test_category_id_not_an_int(tmp_path, bad_id):
    cats = [{"id": 1, "name": "a"}, {"id": bad_id, "name": "b"}]
    if bad_id is None:
        del cats[1]["id"]
    msg = release_error(tmp_path, v2_release(categories=cats))
    assert "dataset.task_attributes.categories[1].id" in msg


def test_category_name_missing(tmp_path):
    msg = release_error(tmp_path, v2_release(categories=[{"id": 1}]))
    assert "dataset.task_attributes.categories[0].name" in msg


@pytest.mark.parametrize(
    "color", [[256, 0, 0], [0, -1, 0], [0, 0, 300.0], [1, 2], [1, 2, 3, 4, 5], "red", [0, "1", 0]]
)
def test_colour_invalid(tmp_path, color):
    cats = [{"id": 1, "name": "a", "color": [1, 2, 3]}, {"id": 2, "name": "b", "color": color}]
    msg = release_error(tmp_path, v2_release(categories=cats))
    assert "dataset.task_attributes.categories[1].color" in msg


def test_categories_missing(tmp_path):
    rel = v2_release()
    del rel["dataset"]["task_attributes"]["categories"]
    msg = release_error(tmp_path, rel)
    assert "categories" in msg


@pytest.mark.parametrize("samples", [{}, {"a": 1}, "samples", None, 3])
def test_samples_not_a_list(tmp_path, samples):
    rel = v2_release()
    rel["dataset"]["samples"] = samples
    msg = release_error(tmp_path, rel)
    assert "dataset.samples" in msg


def test_samples_missing(tmp_path):
    rel = v2_release()
    del rel["dataset"]["samples"]
    msg = release_error(tmp_path, rel)
    assert "samples" in msg and "missing" in msg


def test_errors_are_value_errors(tmp_path):
    # the launcher reports ValueError subclasses as a one-line message
    with pytest.raises(ValueError):
        info_of(tmp_path, v2_release(task_type="pointcloud-cuboid"))


# --------------------------------------------------------------------------- header scan


def test_header_scan_counts_many_samples_without_building_them(tmp_path):
    n = 20_000
    head = json.dumps(v2_release())
    assert head.endswith('"samples": []}}')
    body = ",".join('{"name":"s%d.jpg","labels":{"ground-truth":null}}' % i for i in range(n))
    text = head[: -len("]}}")] + body + "]}}"
    path = write(tmp_path, text)

    started = time.perf_counter()
    header = header_of(path)
    info = release.release_info(header, release.Selection())
    elapsed = time.perf_counter() - started

    assert info.sample_count == n
    assert elapsed < 3.0
    # the header holds the taxonomy etc. but none of the samples
    assert len(repr(header)) < 5_000
    assert "s19999.jpg" not in repr(header)


def test_header_scan_empty_samples(tmp_path):
    assert info_of(tmp_path, v2_release(samples=[])).sample_count == 0


def test_header_after_samples_is_read(tmp_path):
    # key order in the file must not matter: the scan covers the whole file
    text = (
        '{"dataset": {"samples": [{"name": "a.jpg"}, {"name": "b.jpg"}],'
        ' "labelsets": [{"name": "ground-truth"}],'
        ' "task_attributes": {"categories": [{"id": 1, "name": "x"}]},'
        ' "task_type": "segmentation-bitmap", "name": "ds", "owner": "me"},'
        ' "name": "rel"}'
    )
    info = info_of(tmp_path, text)
    assert (info.name, info.dataset_name, info.owner, info.sample_count) == ("rel", "ds", "me", 2)
    assert [c.name for c in info.categories] == ["x"]


# --------------------------------------------------------------------------- selection (spec §3.2)


def _spec_release():
    skipped = {"label_status": "SKIPPED", "attributes": None}
    return v2_release(
        samples=[
            sample("img1.jpg", {"ground-truth": labelled("LABELED")}),
            sample("img2.jpg", {"ground-truth": None}),
            sample("img4.jpg", {"ground-truth": skipped}),
        ]
    )


def select(tmp_path, rel, selection):
    """Selection as the reader does it: status filter, then metadata; index among selected."""
    path = write(tmp_path, rel)
    info = release.release_info(header_of(path), selection)
    kept = []
    for raw in raw_samples(path, info):
        status = release.sample_status(raw, info.labelset)
        if release.filter_reason(raw, status, selection) is None:
            kept.append(raw)
    return info, kept


@pytest.mark.parametrize(
    "filter_by, kept_names",
    [
        (None, ["img1.jpg", "img2.jpg", "img4.jpg"]),
        (("LABELED",), ["img1.jpg"]),
        (("LABELED", "SKIPPED"), ["img1.jpg", "img4.jpg"]),
        (("UNLABELED",), ["img2.jpg"]),
    ],
)
def test_selection_spec_table(tmp_path, filter_by, kept_names):
    info, kept = select(tmp_path, _spec_release(), release.Selection(filter_by=filter_by))
    assert [s["name"] for s in kept] == kept_names
    # only img1 has something to export; it is always the first selected (image_id 1)
    # "in coco-instance images": only img1 has something to export, always as image_id 1
    exported = [
        (s["name"], index + 1)
        for index, s in enumerate(kept)
        if release.skip_reason(s, info.labelset) is None
    ]
    assert exported == ([("img1.jpg", 1)] if "img1.jpg" in kept_names else [])
    # the others are kept (they use up an index) but skipped
    for s in kept:
        if s["name"] != "img1.jpg":
            assert release.skip_reason(s, info.labelset) is not None


def test_sample_status_values():
    assert release.sample_status(sample("a", {"ground-truth": labelled("REVIEWED")}), "ground-truth") == "REVIEWED"
    assert release.sample_status(sample("a", {"ground-truth": None}), "ground-truth") == "UNLABELED"
    # statuses compare case-insensitively
    assert release.sample_status(sample("a", {"ground-truth": labelled("labeled")}), "ground-truth") == "LABELED"


def test_missing_labelset_key_is_unlabeled():
    # The SDK raises KeyError here; the contract says UNLABELED.
    raw = sample("a.jpg", {"predictions": labelled()})
    assert release.sample_status(raw, "ground-truth") == "UNLABELED"
    assert release.sample_status(sample("b.jpg", {}), "ground-truth") == "UNLABELED"
    assert release.sample_status(sample("c.jpg", None), "ground-truth") == "UNLABELED"
    sel = release.Selection(filter_by=("UNLABELED",))
    assert release.filter_reason(raw, "UNLABELED", sel) is None
    assert release.skip_reason(raw, "ground-truth") is not None


def test_missing_labelset_key_in_file(tmp_path):
    rel = v2_release(
        samples=[
            sample("a.jpg", {"ground-truth": labelled()}),
            sample("b.jpg", {"predictions": labelled()}),
        ],
        labelsets=("ground-truth", "predictions"),
    )
    _, kept = select(tmp_path, rel, release.Selection(filter_by=("UNLABELED",)))
    assert [s["name"] for s in kept] == ["b.jpg"]


def test_sample_status_bad_shapes_raise_sample_schema_error():
    with pytest.raises(errors.SampleSchemaError):
        release.sample_status(["not", "a", "sample"], "ground-truth")
    with pytest.raises(errors.SampleSchemaError) as exc:
        release.sample_status(sample("a", {"ground-truth": {"attributes": {}}}), "ground-truth")
    assert "label_status" in str(exc.value)


def _meta_sample(metadata, name="m.jpg"):
    s = sample(name, {"ground-truth": labelled()})
    s["metadata"] = metadata
    return s


def _kept_by_metadata(raw, pairs):
    sel = release.Selection(filter_by_metadata=tuple(pairs))
    return release.filter_reason(raw, release.sample_status(raw, "ground-truth"), sel) is None


def test_filter_by_metadata_exact_equality():
    raw = _meta_sample({"split": "train", "n": 1, "s": "1"})
    assert _kept_by_metadata(raw, [("split", "train")])
    assert not _kept_by_metadata(raw, [("split", "val")])
    assert _kept_by_metadata(raw, [("n", 1)])
    assert not _kept_by_metadata(raw, [("n", "1")])  # "1" != 1
    assert _kept_by_metadata(raw, [("s", "1")])
    assert not _kept_by_metadata(raw, [("s", 1)])
    assert not _kept_by_metadata(raw, [("missing", "x")])


def test_filter_by_metadata_all_pairs_must_match():
    raw = _meta_sample({"split": "train", "weather": "rain"})
    assert _kept_by_metadata(raw, [("split", "train"), ("weather", "rain")])
    assert not _kept_by_metadata(raw, [("split", "train"), ("weather", "sun")])
    assert not _kept_by_metadata(raw, [("split", "val"), ("weather", "rain")])


def test_filter_by_metadata_null_or_missing_metadata_filtered_out():
    assert not _kept_by_metadata(_meta_sample(None), [("split", "train")])
    no_meta = sample("x.jpg", {"ground-truth": labelled()})
    assert "metadata" not in no_meta
    assert not _kept_by_metadata(no_meta, [("split", "train")])
    # without a metadata filter, null metadata is irrelevant
    assert _kept_by_metadata(_meta_sample(None), [])


def test_status_and_metadata_filters_combined(tmp_path):
    rel = v2_release(
        samples=[
            sample("a.jpg", {"ground-truth": labelled("LABELED")}, metadata={"split": "train"}),
            sample("b.jpg", {"ground-truth": labelled("REVIEWED")}, metadata={"split": "train"}),
            sample("c.jpg", {"ground-truth": labelled("LABELED")}, metadata={"split": "val"}),
            sample("d.jpg", {"ground-truth": labelled("LABELED")}),
            sample("e.jpg", {"ground-truth": labelled("LABELED")}, metadata={"split": "train"}),
        ]
    )
    sel = release.Selection(filter_by=("LABELED",), filter_by_metadata=(("split", "train"),))
    _, kept = select(tmp_path, rel, sel)
    assert [s["name"] for s in kept] == ["a.jpg", "e.jpg"]


def test_skip_reason():
    assert release.skip_reason(sample("a", {"ground-truth": labelled()}), "ground-truth") is None
    assert release.skip_reason(sample("a", {"ground-truth": None}), "ground-truth")
    null_attrs = {"label_status": "SKIPPED", "attributes": None}
    assert release.skip_reason(sample("a", {"ground-truth": null_attrs}), "ground-truth")
    missing_attrs = {"label_status": "LABELED"}
    assert release.skip_reason(sample("a", {"ground-truth": missing_attrs}), "ground-truth")
    # an empty annotation list is NOT skipped (spec §3.3)
    empty = labelled(annotations=[])
    assert release.skip_reason(sample("a", {"ground-truth": empty}), "ground-truth") is None


def test_identity_tolerates_junk():
    assert release.identity({"uuid": "u", "name": "n.jpg"}, 3) == ("u", "n.jpg")
    for junk in (["junk"], None, 5, {"uuid": 7, "name": None}, {}):
        uuid, name = release.identity(junk, 7)
        assert isinstance(uuid, str) and isinstance(name, str) and name


# --------------------------------------------------------------------------- parse_sample


@pytest.fixture
def info(tmp_path):
    return info_of(tmp_path, v2_release())


def _sample_with(annotations, bitmap=..., url="https://h/img/a.jpg"):
    label = {
        "label_status": "reviewed",
        "attributes": {"format_version": "0.1", "annotations": annotations},
    }
    if bitmap is not ...:
        label["attributes"]["segmentation_bitmap"] = bitmap
    return {
        "uuid": "u-1",
        "name": "a.jpg",
        "attributes": {"image": {"url": url}},
        "labels": {"ground-truth": label},
    }


def test_parse_sample_fields(info):
    anns = [
        {"id": 3, "category_id": 2, "attributes": {"color": "red", "occluded": True}},
        {"id": 1, "category_id": 1},
        {"id": 16_777_215, "category_id": 1, "track_id": 16_777_215},
    ]
    raw = _sample_with(anns, bitmap={"url": "https://h/bitmaps/a.png"})
    s = release.parse_sample(raw, position=5, index=2, info=info)
    assert s.position == 5
    assert s.index == 2
    assert s.image_id == 3
    assert s.uuid == "u-1"
    assert s.name == "a.jpg"
    assert s.image_url == "https://h/img/a.jpg"
    assert s.bitmap_url == "https://h/bitmaps/a.png"
    assert s.label_status == "REVIEWED"
    assert [(a.id, a.category_id) for a in s.annotations] == [(3, 2), (1, 1), (16_777_215, 1)]
    assert dict(s.annotations[0].attributes) == {"color": "red", "occluded": True}
    assert list(dict(s.annotations[0].attributes)) == ["color", "occluded"]
    assert s.annotations[1].attributes is None
    assert all(isinstance(a, Annotation) for a in s.annotations)


def test_parse_sample_empty_annotations(info):
    s = release.parse_sample(_sample_with([], bitmap={"url": "https://h/b.png"}), 0, 0, info)
    assert s.annotations == ()


@pytest.mark.parametrize("bitmap", [None, {"url": None}, {"url": ""}, {}, ...])
def test_parse_sample_missing_bitmap_url(info, bitmap):
    s = release.parse_sample(_sample_with([{"id": 1, "category_id": 1}], bitmap=bitmap), 0, 0, info)
    assert s.bitmap_url is None
    assert [a.id for a in s.annotations] == [1]


def test_parse_sample_image_url(info):
    raw = _sample_with([], url="https://bucket.example/x/y.png?X-Sig=abc")
    assert release.parse_sample(raw, 0, 0, info).image_url == "https://bucket.example/x/y.png?X-Sig=abc"
    raw = _sample_with([])
    raw["attributes"] = {}
    assert release.parse_sample(raw, 0, 0, info).image_url is None
    raw["attributes"] = {"image": {"url": None}}
    assert release.parse_sample(raw, 0, 0, info).image_url is None


def _schema_error(info, annotations) -> str:
    raw = _sample_with(annotations, bitmap={"url": "https://h/b.png"})
    with pytest.raises(errors.SampleSchemaError) as exc:
        release.parse_sample(raw, 0, 0, info)
    return str(exc.value)


BASE = "labels.ground-truth.attributes.annotations"


@pytest.mark.parametrize("annotations", [{"id": 1, "category_id": 1}, "x", 5])
def test_annotations_not_a_list(info, annotations):
    assert BASE in _schema_error(info, annotations)


def test_annotation_id_zero(info):
    assert f"{BASE}[1].id" in _schema_error(info, [{"id": 1, "category_id": 1}, {"id": 0, "category_id": 1}])


def test_annotation_id_too_large(info):
    msg = _schema_error(info, [{"id": 16_777_216, "category_id": 1}])
    assert f"{BASE}[0].id" in msg


def test_annotation_id_negative(info):
    assert f"{BASE}[0].id" in _schema_error(info, [{"id": -4, "category_id": 1}])


def test_annotation_duplicate_id(info):
    msg = _schema_error(
        info, [{"id": 2, "category_id": 1}, {"id": 3, "category_id": 1}, {"id": 2, "category_id": 2}]
    )
    assert f"{BASE}[2].id" in msg
    assert "duplicate" in msg


@pytest.mark.parametrize("cid", ["1", None, 1.5, True])
def test_annotation_category_id_not_int(info, cid):
    ann = {"id": 1, "category_id": cid}
    assert f"{BASE}[0].category_id" in _schema_error(info, [ann])


@pytest.mark.parametrize("aid", ["1", None, 2.5, True, [1]])
def test_annotation_id_not_int(info, aid):
    assert f"{BASE}[0].id" in _schema_error(info, [{"id": aid, "category_id": 1}])


def test_annotation_not_an_object(info):
    assert f"{BASE}[0]" in _schema_error(info, [7])


def test_schema_errors_are_sample_errors(info):
    # a bad sample fails alone; it is not a ReleaseError
    with pytest.raises(errors.SampleError) as exc:
        release.parse_sample(_sample_with([{"id": 0, "category_id": 1}]), 0, 0, info)
    assert exc.value.stage == "read"
    assert not isinstance(exc.value, errors.ReleaseError)


def test_parse_sample_other_labelset(tmp_path):
    info = info_of(tmp_path, v2_release(labelsets=("ground-truth", "predictions")),
                   release.Selection(labelset="predictions"))
    raw = sample("a.jpg", {"ground-truth": labelled(annotations=[{"id": 1, "category_id": 1}]),
                           "predictions": labelled(annotations=[{"id": 9, "category_id": 2}])})
    s = release.parse_sample(raw, 0, 0, info)
    assert [(a.id, a.category_id) for a in s.annotations] == [(9, 2)]
    bad = sample("b.jpg", {"ground-truth": labelled(),
                           "predictions": labelled(annotations=[{"id": 0, "category_id": 2}])})
    with pytest.raises(errors.SampleSchemaError) as exc:
        release.parse_sample(bad, 0, 0, info)
    assert "labels.predictions.attributes.annotations[0].id" in str(exc.value)


def test_parse_sample_from_file_big_ids(tmp_path):
    # samples streamed from a file; ids above 65535 are valid 24-bit ids
    rel = v2_release(samples=[sample("a.jpg", {"ground-truth": labelled(
        annotations=[{"id": 70000, "category_id": 2}, {"id": 1, "category_id": 1}])})])
    path = write(tmp_path, rel)
    info = release.release_info(header_of(path), release.Selection())
    (raw,) = raw_samples(path, info)
    s = release.parse_sample(raw, 0, 0, info)
    assert [(a.id, a.category_id) for a in s.annotations] == [(70000, 2), (1, 1)]
    assert all(type(a.id) is int and type(a.category_id) is int for a in s.annotations)


# --------------------------------------------------------------------------- metadata filters


def test_parse_metadata_filters_values():
    out = release.parse_metadata_filters(["n=1", "ok=true", 's="1"', "split=train", "f=1.5", "z=null"])
    assert out == (("n", 1), ("ok", True), ("s", "1"), ("split", "train"), ("f", 1.5), ("z", None))
    assert type(out[0][1]) is int
    assert out[1][1] is True
    assert type(out[2][1]) is str


def test_parse_metadata_filters_splits_on_first_equals():
    assert release.parse_metadata_filters(["expr=a=b"]) == (("expr", "a=b"),)
    assert release.parse_metadata_filters(["empty="]) == (("empty", ""),)


def test_parse_metadata_filters_plain_text_kept_verbatim():
    assert release.parse_metadata_filters(["name=hello world"]) == (("name", "hello world"),)


def test_parse_metadata_filters_missing_equals():
    with pytest.raises(errors.ReleaseError) as exc:
        release.parse_metadata_filters(["ok", "n=1"])
    assert "filter_by_metadata" in str(exc.value)
    assert "ok" in str(exc.value)


def test_parse_metadata_filters_round_trip_with_filter():
    raw = _meta_sample({"n": 1, "s": "1"})
    assert _kept_by_metadata(raw, release.parse_metadata_filters(["n=1"]))
    assert not _kept_by_metadata(raw, release.parse_metadata_filters(["n=\"1\""]))
    assert _kept_by_metadata(raw, release.parse_metadata_filters(['s="1"']))
    assert not _kept_by_metadata(raw, release.parse_metadata_filters(["s=1"]))


def test_category_type_is_frozen(info):
    assert isinstance(info.categories[0], Category)
    with pytest.raises(Exception):
        info.categories[0].id = 5  # type: ignore[misc]
