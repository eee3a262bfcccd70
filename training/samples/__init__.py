"""Small real data sets bundled with the project, so a recipe trains without network or tfds files.

`mnist5k.npz`: 5,000 real MNIST digits (4,000 train / 1,000 test), the same digits, split and
order as the `../shared/data/mnist5k` PNG folder. Source and license in README.md beside it.
`load(name)` returns the arrays; `python -m training.samples FOLDER` rebuilds the file from the
PNG folder, byte for byte (fixed zip timestamps).
"""

import pathlib
import zipfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
SPLITS = ("train", "test")

# name -> (the tfds data set it is a sample of, a one-line description)
SAMPLES = {
    "mnist5k": ("mnist", "5,000 real MNIST digits bundled in training/samples/mnist5k.npz"),
}


def path(name: str) -> pathlib.Path:
    return HERE / f"{name}.npz"


def load(name: str) -> dict[str, np.ndarray]:
    """`{split}_images` (uint8, N x H x W x C), `{split}_labels` (uint8), `{split}_ids` (the PNG
    file numbers), `class_names` (str) for each split."""
    with np.load(path(name)) as arrays:
        return dict(arrays)


def from_folder(root) -> dict[str, np.ndarray]:
    """The arrays of a `root/<split>/<label>/<n>.png` folder, in the order the folder source loads
    it (by label, then file name)."""
    from PIL import Image

    root = pathlib.Path(root)
    class_names = sorted({p.name for split in SPLITS for p in (root / split).iterdir()})
    arrays = {"class_names": np.array(class_names)}
    for split in SPLITS:
        files = sorted((root / split).glob("*/*.png"), key=lambda f: (f.parent.name, f.name))
        images = np.stack([np.asarray(Image.open(f)) for f in files])
        arrays[f"{split}_images"] = images[..., None] if images.ndim == 3 else images
        arrays[f"{split}_labels"] = np.array(
            [class_names.index(f.parent.name) for f in files], np.uint8
        )
        arrays[f"{split}_ids"] = np.array([int(f.stem) for f in files], np.uint16)
    return arrays


def write(arrays: dict[str, np.ndarray], out) -> None:
    """An .npz `np.load` reads, deflated, with fixed timestamps so a rebuild is byte-identical."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, array in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
