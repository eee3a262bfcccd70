"""Moving digits (training/moving_digits.py) from the real shared digits: the digit crosses the
canvas 2 pixels a frame in its labelled direction, whole in every frame; the same seed gives the
same clips; a split's clips come from its own digits."""

import numpy as np
import pytest

from training import data
from training import moving_digits as md


@pytest.fixture(scope="module")
def source(shared_data):
    return data.open_source(f"moving_digits:folder:{shared_data / 'mnist5k'}?count=400&seed=1")


@pytest.fixture(scope="module")
def clips(source):
    return list(source.load("test").as_numpy_iterator())


def test_the_digit_moves_two_pixels_a_frame_in_the_labelled_direction(source, clips):
    assert source.features["label"].names == list(md.DIRECTIONS)
    assert len(clips) == 400
    for clip in clips:
        video, label = clip["video"], clip["label"]
        assert video.shape == (16, 64, 64, 1) and video.dtype == np.uint8
        dy, dx = md.MOVES[md.DIRECTIONS[label]]
        digit = video[0]  # every frame is the first one moved, nothing cut off at the edges
        for t in range(16):
            shifted = np.roll(digit, (t * dy, t * dx), axis=(0, 1))
            assert np.array_equal(video[t], shifted), (label, t)
            assert video[t].sum(dtype=np.int64) == digit.sum(dtype=np.int64)
        # and the direction reads as its name: N is up the picture, E to the right, 30 pixels
        name = md.DIRECTIONS[label]
        (y0, x0), (y1, x1) = (np.argwhere(video[t, ..., 0]).mean(0) for t in (0, 15))
        expected = (
            30 * ("S" in name) - 30 * ("N" in name),
            30 * ("E" in name) - 30 * ("W" in name),
        )
        np.testing.assert_allclose((y1 - y0, x1 - x0), expected, atol=1e-6)


def test_directions_and_starts_are_spread(clips):
    labels = np.array([c["label"] for c in clips])
    assert np.bincount(labels, minlength=8).min() > 25  # 8 directions, ~50 each
    # a first frame alone: the digit starts anywhere its path allows, in every direction
    corners = np.array([np.argwhere(c["video"][0, ..., 0]).min(0) for c in clips])
    assert corners.min() <= 8 and corners.max() >= 30


def test_a_splits_clips_come_from_its_own_digits_and_the_seed_fixes_them(shared_data, tmp_path):
    for split, digit in (("train", "1"), ("test", "7")):
        (tmp_path / split).mkdir()
        (tmp_path / split / digit).symlink_to(shared_data / "mnist5k" / split / digit)
    spec = f"moving_digits:folder:{tmp_path}?count=30&seed=3"
    digits = data.open_source(f"folder:{tmp_path}")
    for split in ("train", "test"):
        own = {d["image"].tobytes() for d in digits.load(split).as_numpy_iterator()}
        for clip in data.open_source(spec).load(split).as_numpy_iterator():
            first = clip["video"][0]
            # find the pasted 28x28 square: the one window that is a digit of the split
            found = any(
                first[y : y + 28, x : x + 28].tobytes() in own
                for y in range(37)
                for x in range(37)
                if first[y : y + 28, x : x + 28].sum() == first.sum()
            )
            assert found, split
    again = [c["video"] for c in data.open_source(spec).load("test").as_numpy_iterator()]
    other = data.open_source(spec.replace("seed=3", "seed=4")).load("test")
    first = [c["video"] for c in data.open_source(spec).load("test").as_numpy_iterator()]
    assert all(np.array_equal(a, b) for a, b in zip(again, first))
    assert not all(np.array_equal(a, c["video"]) for a, c in zip(first, other.as_numpy_iterator()))


def test_the_default_is_one_clip_per_digit_and_bad_options_are_refused():
    source = data.open_source("moving_digits:sample:mnist5k")
    assert data.count(source.load("test")) == 1000
    with pytest.raises(data.DataError, match="count=N&seed=S"):
        data.open_source("moving_digits:sample:mnist5k?frames=8")
    with pytest.raises(data.DataError, match="28x28x1"):
        data.open_source("moving_digits:digit_scenes:sample:mnist5k")
