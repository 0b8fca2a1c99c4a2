"""Unit tests for transforms/model/paths.py: safe, unique, SDK-compatible output names.

Expectations come from the module's contract and the spec (§3.4 naming, §4.0.2 file names).
"""

from __future__ import annotations

import itertools
import posixpath
import random
import re
import unicodedata

import pytest

from transforms.model import paths

# --------------------------------------------------------------------------- helpers


def assert_safe(stem: str) -> None:
    """A stem that cannot name anything outside the output folder, on POSIX or Windows."""
    assert isinstance(stem, str) and stem, repr(stem)
    assert not stem.startswith("/"), repr(stem)
    assert "\\" not in stem, repr(stem)
    assert not re.match(r"^[A-Za-z]:", stem), repr(stem)
    assert ":" not in stem, repr(stem)  # drive letters / NTFS streams anywhere
    for part in stem.split("/"):
        assert part not in ("", ".", ".."), repr(stem)
        assert not part.endswith((" ", ".")), repr(stem)  # Windows strips these
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in stem), repr(stem)
    assert not re.search(r'[<>"|?*]', stem), repr(stem)
    normalised = posixpath.normpath(stem)
    assert normalised == stem and not normalised.startswith(".."), repr(stem)


def assign(names):
    """Stem assignment exactly as the pipeline does it (transforms/names.py): key every
    sample by collision_key(sample_stem(name)), then unique_stems per group."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for index, name in enumerate(names):
        stem = paths.sample_stem(name)
        groups.setdefault(paths.collision_key(stem), []).append((index, stem))
    out: dict[int, str] = {}
    for members in groups.values():
        out.update(paths.unique_stems(members))
    assert sorted(out) == list(range(len(names)))
    return [out[i] for i in range(len(names))]


def assert_distinct_case_insensitively(stems):
    folded = [s.casefold() for s in stems]
    assert len(set(folded)) == len(folded), stems


# --------------------------------------------------------------------------- sample_stem


@pytest.mark.parametrize(
    "name, stem",
    [
        ("a/b.jpg", "a/b"),
        ("donuts.jpg", "donuts"),
        ("a/b/c.png", "a/b/c"),
        ("no_extension", "no_extension"),
        ("archive.tar.gz", "archive.tar"),  # splitext: only the last extension goes
        ("a\\b.jpg", "a/b"),  # backslash is a separator too
        ("../../x.jpg", "x"),
        ("/etc/passwd", "etc/passwd"),
        ("C:\\x\\y.png", "x/y"),
        ("a//b.jpg", "a/b"),
        ("./a/./b.jpg", "a/b"),
    ],
)
def test_sample_stem_examples(name, stem):
    assert paths.sample_stem(name) == stem


HOSTILE = [
    "../../x.jpg",
    "..\\..\\windows\\win.ini",
    "/etc/passwd",
    "/",
    "//server/share/x.png",
    "\\\\?\\C:\\x\\y.png",
    "C:\\x\\y.png",
    "C:/x/y.png",
    "c:x.png",
    "C:",
    "a/../../../b.jpg",
    "a/b/../../../../c",
    ".",
    "..",
    "...",
    "",
    "/.",
    "./..",
    " .. /x.jpg",
    ". ./x.jpg",
    "a\x00b.jpg",
    "\x00",
    "..\x00/x.png",
    "a\x01\x1f\x7fb.png",
    "tab\there/new\nline.jpg",
    "x/\r/y.jpg",
    'what?<is>"this"|*.jpg',
    "trailing./dots../x.jpg",
    "trailing /space /x.jpg",
    "a:b.jpg",
    "stream.jpg:ads",
    "..../....jpg",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_sample_stem_never_escapes(name):
    assert_safe(paths.sample_stem(name))


def test_sample_stem_removes_c1_control_characters():
    # The contract removes NUL/control characters; U+0080..U+009F are control characters
    # (Unicode category Cc) just like U+0000..U+001F.
    for name in ("a\x85b.jpg", "x\x9b[31m.png", "c\x80/d\x9f.jpg"):
        stem = paths.sample_stem(name)
        assert not any(unicodedata.category(ch) == "Cc" for ch in stem), repr(stem)


def test_sample_stem_empty_results_become_a_name():
    for name in ("", ".", "..", "/", "\\", "C:", "../..", " . "):
        stem = paths.sample_stem(name)
        assert stem  # never empty
        assert_safe(stem)


def _component_bytes_ok(stem):
    return all(len(part.encode("utf-8")) <= 120 for part in stem.split("/"))


@pytest.mark.parametrize(
    "base",
    [
        "x" * 300,
        "é" * 200,  # 2 bytes each
        "日本語" * 60,  # 3 bytes each
        "😀" * 90,  # 4 bytes each
        "ab" * 61 + "é" * 3,  # multibyte right at the cut
    ],
)
def test_long_names_cut_and_still_distinct(base):
    one = paths.sample_stem(base + "1.jpg")
    two = paths.sample_stem(base + "2.jpg")
    for stem in (one, two):
        assert _component_bytes_ok(stem), [len(p.encode()) for p in stem.split("/")]
        assert_safe(stem)
        stem.encode("utf-8")  # valid text, no split character
    assert one != two
    assert one.casefold() != two.casefold()


def test_long_folder_components_cut():
    name = "d" * 400 + "/" + "é" * 150 + "/" + "f" * 250 + ".png"
    stem = paths.sample_stem(name)
    assert stem.count("/") == 2
    assert _component_bytes_ok(stem)
    assert_safe(stem)


def test_long_names_deterministic():
    name = "ü" * 300 + ".jpg"
    assert paths.sample_stem(name) == paths.sample_stem(name)


def test_unicode_kept_and_nfc():
    assert paths.sample_stem("日本語/写真.jpg") == "日本語/写真"
    assert paths.sample_stem("Ωμέγα.png") == "Ωμέγα"
    decomposed = "cafe\u0301/n\u0303o.jpg"  # NFD
    stem = paths.sample_stem(decomposed)
    assert stem == unicodedata.normalize("NFC", "cafe\u0301/n\u0303o")
    assert stem == "caf\u00e9/\u00f1o"
    # NFC and NFD spellings of one name give one stem
    assert paths.sample_stem("caf\u00e9.jpg") == paths.sample_stem("cafe\u0301.jpg")


def test_sample_stem_is_a_pure_function():
    for name in HOSTILE:
        assert paths.sample_stem(name) == paths.sample_stem(name)


# --------------------------------------------------------------------------- uniqueness


def test_same_stem_different_extension():
    stems = assign(["a.jpg", "a.png"])
    assert stems[0] == "a"  # the first by index keeps its stem
    assert stems[1] != "a"
    assert stems[1] == "a__2"  # contract: the others get __{image_id}, image_id = index + 1
    assert_distinct_case_insensitively(stems)


def test_case_insensitive_collision():
    stems = assign(["A.jpg", "a.jpg"])
    assert stems[0] == "A"
    assert stems[1].casefold() != "a"
    assert stems[1] == "a__2"
    assert_distinct_case_insensitively(stems)


def test_collisions_inside_folders():
    stems = assign(["x/a.jpg", "X/A.png", "x/a.bmp"])
    assert stems[0] == "x/a"
    assert_distinct_case_insensitively(stems)
    for s in stems:
        assert_safe(s)


def test_literal_suffixed_name_with_two_plain_ones():
    for names in (
        ["a.jpg", "a.png", "a__2.jpg"],
        ["a__2.jpg", "a.jpg", "a.png"],
        ["a.jpg", "a__2.jpg", "a.png"],
        ["a.jpg", "A__2.png", "a.png"],
    ):
        stems = assign(names)
        assert_distinct_case_insensitively(stems)
        # the first sample of the group (by index) keeps its own stem
        assert stems[0] == paths.sample_stem(names[0])


def test_literal_names_with_suffixes_never_collide():
    # Contract: "a suffixed name can never collide with another sample's literal name".
    # Names are grouped by collision_key exactly as the pipeline does.
    names = ["a.jpg", "a.png", "a__2.jpg", "a__2__3.jpg", "a__3.png", "a__3_.jpg", "a.bmp"]
    stems = assign(names)
    assert_distinct_case_insensitively(stems)


@pytest.mark.parametrize(
    "names",
    [
        # "a__2.png" loses to "a__2.jpg" and gets a generated "a__2__2", while "a__2__2.jpg"
        # is keyed by collision_key "a__2", another group than "a__2" -> key "a"
        ["a__2.jpg", "a__2.png", "a__2__2.jpg"],
        # the `_k` fallback: "a.png" loses, "a__2" is taken by a literal, so it gets
        # "a__2_2", which is also the literal stem of the last sample (its own group)
        ["a.jpg", "a.png", "a__2.jpg", "a__2_2.jpg"],
    ],
)
def test_generated_names_never_collide_across_groups(names):
    # Contract: "a suffixed name can never collide with another sample's literal name",
    # with groups keyed by collision_key as the pipeline does.
    stems = assign(names)
    assert_distinct_case_insensitively(stems)


def test_unique_stems_many_collisions():
    names = [f"{'A' if i % 2 else 'a'}.{ext}" for i, ext in enumerate(["jpg", "png"] * 10)]
    names += ["a__4.jpg", "a__10.png", "A__2.jpg"]
    stems = assign(names)
    assert_distinct_case_insensitively(stems)
    assert stems[0] == "a"


def test_unique_stems_deterministic_regardless_of_order():
    members = [(4, "a"), (0, "a"), (9, "A"), (2, "a__2"), (7, "a")]
    expected = paths.unique_stems(members)
    rng = random.Random(1234)
    for _ in range(20):
        shuffled = members[:]
        rng.shuffle(shuffled)
        assert paths.unique_stems(shuffled) == expected
    assert paths.unique_stems(reversed(members)) == expected
    # the lowest index keeps its stem
    assert expected[0] == "a"
    assert len({v.casefold() for v in expected.values()}) == len(members)


def test_assignment_deterministic_regardless_of_group_order():
    names = ["a.jpg", "b.png", "A.png", "b.jpg", "a__2.jpg", "c.jpg"]
    expected = assign(names)
    # same samples, groups built in another order (as a shuffle would deliver them)
    groups: dict[str, list[tuple[int, str]]] = {}
    for index, name in reversed(list(enumerate(names))):
        stem = paths.sample_stem(name)
        groups.setdefault(paths.collision_key(stem), []).append((index, stem))
    out = {}
    for key in sorted(groups, reverse=True):
        out.update(paths.unique_stems(groups[key]))
    assert [out[i] for i in range(len(names))] == expected


def test_unique_stems_without_collision_keeps_stems():
    assert paths.unique_stems([(3, "x")]) == {3: "x"}
    assert paths.unique_stems([]) == {}


def test_collision_key_groups_case_and_suffix():
    assert paths.collision_key("A") == paths.collision_key("a")
    assert paths.collision_key("a__2") == paths.collision_key("a")
    assert paths.collision_key("dir/Photo__17") == paths.collision_key("DIR/photo")
    assert paths.collision_key("a") != paths.collision_key("b")


def test_small_exhaustive_mix_is_collision_free():
    alphabet = ["a", "A", "a__1", "a__2", "A__3", "a__2__3", "b", "B__1"]
    for combo in itertools.permutations(alphabet, 5):
        names = [c + ".jpg" for c in combo] + [combo[0] + ".png", combo[1] + ".bmp"]
        stems = assign(names)
        assert_distinct_case_insensitively(stems)


# --------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("instance", "instance/dir/img_label_ground-truth_instance.png"),
        ("instance-color", "instance-color/dir/img_label_ground-truth_instance_colored.png"),
        ("semantic", "semantic/dir/img_label_ground-truth_semantic.png"),
        ("semantic-color", "semantic-color/dir/img_label_ground-truth_semantic_colored.png"),
        ("coco-panoptic", "coco-panoptic/dir/img_label_ground-truth_coco-panoptic.png"),
        ("yolo", "labels/dir/img.txt"),
    ],
)
def test_sample_file_names_follow_the_sdk(fmt, expected):
    assert paths.sample_file(fmt, "dir/img", "ground-truth") == expected


def test_sample_file_other_labelset():
    assert paths.sample_file("semantic", "x", "predictions") == "semantic/x_label_predictions_semantic.png"


def test_per_sample_formats_cover_sample_file():
    assert set(paths.per_sample_formats()) == {
        "instance", "instance-color", "semantic", "semantic-color", "coco-panoptic", "yolo",
        "yolo-seg",
    }


def test_yolo_seg_labels_go_where_ultralytics_looks_unless_yolo_holds_the_boxes():
    assert paths.yolo_seg_file("a/b", {"yolo-seg"}) == "labels/a/b.txt"
    assert paths.yolo_seg_file("a/b", {"yolo", "yolo-seg"}) == "labels-seg/a/b.txt"


@pytest.mark.parametrize("labelset", ["../../../../../etc", "a/b", "..\\..\\x", "/abs"])
def test_sample_file_labelset_cannot_add_path_components(labelset):
    # The module promises safe output paths; the labelset (a name from the release file)
    # is put inside the file name, so it must not add folders or climb out of OUT.
    for fmt in ("instance", "semantic", "coco-panoptic"):
        path = paths.sample_file(fmt, "img", labelset)
        parts = path.split("/")
        assert ".." not in parts, path
        assert "\\" not in path, path
        assert len(parts) == 2, path  # folder/file
        assert not posixpath.normpath(path).startswith(".."), path


def test_images_paths():
    assert paths.image_path("dir/img", ".jpg") == "images/dir/img.jpg"
    assert paths.image_file_name("dir/img", ".jpg") == "dir/img.jpg"


def test_an_image_of_unknown_format_is_copied_as_bin():
    # never extensionless: images/a would block the folder of sample a/b, and sample
    # "a.jpg.x" (stem a.jpg) would replace the image of sample a.jpg
    assert paths.image_path("a", "") == "images/a.bin"
    assert paths.image_file_name("a/b", "") == "a/b.bin"


@pytest.mark.parametrize(
    "name, stem",
    [
        ("d.jpg/e.jpg", "d.jpg_/e"),  # images/d.jpg is sample d.jpg's image
        ("D.JPG/e.jpg", "D.JPG_/e"),  # case-insensitive file systems
        ("t.txt/u/v.png", "t.txt_/u/v"),  # labels/t.txt
        ("x_label_ls_instance.png/y", "x_label_ls_instance.png_/y"),
        ("a.bin/b", "a.bin_/b"),
        ("v1.2/b.jpg", "v1.2/b"),  # not a file extension: unchanged
        ("d.jpg", "d"),  # the file's own stem is not a folder
    ],
)
def test_a_folder_never_ends_like_a_file(name, stem):
    assert paths.sample_stem(name) == stem


@pytest.mark.parametrize(
    "url, name, ext",
    [
        ("https://h/p/img.png", "a.jpg", ".png"),  # the URL wins (spec §3.4)
        ("https://h/p/img4.jpg", "img4.jpeg", ".jpg"),  # spec §3.4 example
        ("https://h/p/img.png?X-Amz-Signature=abc.jpg", "a.bmp", ".png"),  # query ignored
        ("https://h/p/img.jpeg?x=1#frag.gif", "a", ".jpeg"),
        ("https://h/p/blob?name=x.jpg", "a.bmp", ".bmp"),  # no ext in URL path: the name's
        ("https://h/p/blob", "dir/a.jpg", ".jpg"),
        (None, "a.png", ".png"),
        ("", "a.jpeg", ".jpeg"),
        ("s3://bucket/k/img.webp", "a.jpg", ".webp"),
        ("gs://bucket/k/img.tiff", "a", ".tiff"),
        ("https://h/p/data.json", "a.png", ".png"),  # non-image URL ext: fall back
        ("https://h/p/file.txt", "a.doc", ""),  # neither is an image extension
        ("https://h/p/blob", "noext", ""),
        (None, "", ""),
        ("https://h/p.jpg/blob", "x", ""),  # only the last path component's extension
    ],
)
def test_image_extension(url, name, ext):
    assert paths.image_extension(url, name) == ext


def test_image_extension_case_insensitive_recognition():
    # an upper-case image extension is still an image extension
    assert paths.image_extension("https://h/p/IMG.JPG", "x").lower() == ".jpg"
    assert paths.image_extension(None, "PHOTO.PNG").lower() == ".png"
