"""Digit scenes (training/scenes.py) from the real shared digits: every rule of the recipe, the
same scenes for the same seed, a split's scenes from its own digits, and the data source."""

import itertools

import numpy as np
import pytest

from training import data, samples, scenes


@pytest.fixture(scope="module")
def digits():
    arrays = samples.load("mnist5k")
    return arrays["train_images"], arrays["train_labels"].astype(np.int64)


@pytest.fixture(scope="module")
def built(digits):
    rng = np.random.default_rng(7)
    return [scenes.scene(*digits, rng, instances=True) for _ in range(300)]


def tight_box(ink):
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)


def test_counts_and_sizes_follow_the_recipe(built):
    counts = [len(s["labels"]) for s in built]
    assert set(counts) == {1, 2, 3, 4, 5}  # each count happens (uniform: ~60 of each)
    assert min(counts.count(k) for k in range(1, 6)) > 30
    sizes = np.concatenate([s["sizes"] for s in built])
    assert sizes.min() == 28 and sizes.max() == 56
    for s in built:
        assert s["image"].shape == s["mask"].shape == (128, 128, 1)
        assert s["image"].dtype == s["mask"].dtype == np.uint8
        boxes = s["boxes"]
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 128).all()
        assert (boxes[:, 2:] - boxes[:, :2] <= s["sizes"][:, None]).all()


def test_boxes_hold_exactly_their_digits_ink_and_overlap_at_most_0_3(built):
    for s in built:
        for box, ink in zip(s["boxes"], s["instances"]):
            assert tuple(box) == tight_box(ink)
        for a, b in itertools.combinations(s["boxes"], 2):
            assert scenes.iou(a, b) <= 0.3


def test_masks_are_the_ink_with_the_later_digit_on_top(built):
    for s in built:
        expected = np.zeros((128, 128), np.uint8)
        for label, ink in zip(s["labels"], s["instances"]):
            expected[ink] = label + 1
        assert (s["mask"][..., 0] == expected).all()
        # the ink is where the image is bright; composited by maximum, so never dimmer
        assert (s["image"][..., 0][expected > 0] >= 128).all()
        assert (s["image"][..., 0][expected == 0] < 128).all()


def test_captions_read_left_to_right_in_words():
    boxes = np.array([[0, 60, 30, 90], [50, 10, 80, 40], [90, 60, 120, 90]])
    assert scenes.caption(boxes, np.array([7, 2, 9]), [str(d) for d in range(10)]) == (
        "two seven nine"  # 7 and 9 share a centre x: the upper one first
    )


def test_the_same_seed_gives_the_same_scenes(digits):
    def images(seed, split):
        return scenes.build(*digits, 20, scenes.split_rng(seed, split), list("0123456789"))

    a, b, c = images(3, "train"), images(3, "train"), images(4, "train")
    assert all((a[k] == b[k]).all() for k in a)
    assert not (a["images"] == c["images"]).all()
    assert not (a["images"] == images(3, "test")["images"]).all()  # splits draw apart


def test_the_source_builds_a_splits_scenes_from_its_own_digits(shared_data, tmp_path):
    """A folder whose train split holds only 1s and test split only 7s."""
    for split, digit in (("train", "1"), ("test", "7")):
        (tmp_path / split).mkdir()
        (tmp_path / split / digit).symlink_to(shared_data / "mnist5k" / split / digit)
    source = data.open_source(f"digit_scenes:folder:{tmp_path}?count=12&seed=1")
    assert source.splits == ["test", "train"]
    for split, digit in (("train", "1"), ("test", "7")):
        examples = list(source.load(split).as_numpy_iterator())
        assert len(examples) == 12
        names = [
            source.features["objects"]["label"].names[i]
            for e in examples
            for i in e["objects"]["label"]
        ]
        assert set(names) == {digit}
        for e in examples:
            assert e["image"].shape == (128, 128, 1) and e["image"].dtype == np.uint8
            boxes = e["objects"]["bbox"]
            assert boxes.dtype == np.float32 and ((0 <= boxes) & (boxes <= 1)).all()
            assert e["caption"].decode().split() == [scenes.WORDS[int(digit)]] * len(boxes)
            classes = set(np.unique(e["segmentation_mask"])) - {0}
            assert classes == {source.features["objects"]["label"].names.index(digit) + 1}


def test_default_count_is_two_scenes_per_digit():
    source = data.open_source("digit_scenes:sample:mnist5k?seed=2")
    assert data.count(source.load("test")) == 2000


@pytest.mark.parametrize(
    "spec, reason",
    [
        ("digit_scenes:sample:mnist5k?count=many", "count=N&seed=S"),
        ("digit_scenes:sample:mnist5k?size=3", "count=N&seed=S"),
        ("digit_scenes:sample:mnist5k?count=0", "at least 1"),
        ("digit_scenes:folder:/no/such/folder", "does not exist"),
    ],
)
def test_a_bad_spec_is_a_data_error(spec, reason):
    with pytest.raises(data.DataError, match=reason):
        data.open_source(spec)
