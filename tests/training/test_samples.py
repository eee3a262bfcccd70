"""The bundled MNIST sample (training/samples/mnist5k.npz): exactly the shared PNG digits, under
2 MB, rebuilt byte for byte from the PNG folder, and a data source (`sample:mnist5k`) giving what
the folder source gives."""

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from training import data, samples

PNGS = SHARED_DATA / "mnist5k"
needs_pngs = pytest.mark.skipif(not PNGS.is_dir(), reason=f"{PNGS} absent (a clean clone)")


def test_the_file_is_under_2_mb_and_holds_5000_digits():
    assert samples.path("mnist5k").stat().st_size < 2 * 2**20
    arrays = samples.load("mnist5k")
    assert arrays["train_images"].shape == (4000, 28, 28, 1)
    assert arrays["test_images"].shape == (1000, 28, 28, 1)
    assert arrays["train_images"].dtype == np.uint8
    assert list(arrays["class_names"]) == [str(d) for d in range(10)]
    labels = np.concatenate([arrays["train_labels"], arrays["test_labels"]])
    assert np.bincount(labels).tolist() == [500] * 10
    ids = np.concatenate([arrays["train_ids"], arrays["test_ids"]])
    assert len(set(ids.tolist())) == 5000


@needs_pngs
def test_the_arrays_are_the_shared_pngs_and_rebuild_byte_for_byte(tmp_path):
    rebuilt = samples.from_folder(PNGS)
    bundled = samples.load("mnist5k")
    assert sorted(rebuilt) == sorted(bundled)
    for key, array in bundled.items():
        np.testing.assert_array_equal(rebuilt[key], array, err_msg=key)
    samples.write(rebuilt, tmp_path / "mnist5k.npz")
    assert (tmp_path / "mnist5k.npz").read_bytes() == samples.path("mnist5k").read_bytes()


@needs_pngs
def test_the_sample_source_gives_what_the_folder_source_gives():
    sample = data.open_source("sample:mnist5k")
    folder = data.open_source(f"folder:{PNGS}")
    assert sample.name == "sample:mnist5k"
    assert sorted(sample.splits) == sorted(folder.splits) == ["test", "train"]
    assert sample.class_names == folder.class_names == [str(d) for d in range(10)]
    assert sample.features["image"].shape == folder.features["image"].shape == (28, 28, 1)
    assert sample.features["image"].dtype == folder.features["image"].dtype
    for a, b in zip(sample.load("test"), folder.load("test"), strict=True):
        assert a["label"].dtype == b["label"].dtype and int(a["label"]) == int(b["label"])
        np.testing.assert_array_equal(a["image"].numpy(), b["image"].numpy())


def test_an_unknown_sample_is_a_data_error():
    with pytest.raises(data.DataError, match="no bundled sample 'mnist6k'"):
        data.open_source("sample:mnist6k")
