"""`python -m training.samples ../shared/data/mnist5k [--name mnist5k] [--out FILE]`: rebuild a
bundled sample from its PNG folder."""

import argparse
import hashlib

from training import samples

parser = argparse.ArgumentParser(prog="python -m training.samples", description=__doc__)
parser.add_argument("folder", help="FOLDER/<split>/<label>/<n>.png")
parser.add_argument("--name", default="mnist5k")
parser.add_argument("--out", help="default: training/samples/<name>.npz")
args = parser.parse_args()
out = args.out or samples.path(args.name)
arrays = samples.from_folder(args.folder)
samples.write(arrays, out)
digest = hashlib.sha256(open(out, "rb").read()).hexdigest()
counts = ", ".join(f"{s} {len(arrays[f'{s}_labels'])}" for s in samples.SPLITS)
print(f"{out}: {counts}; sha256 {digest}")
