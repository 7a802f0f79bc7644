#!/usr/bin/env python3
"""Write a data file for skein's `hessian` job: `/X` float32 (n x d, row-major), `/y` int64 class labels
0..c-1 (or float32 n x t regression targets), root attributes `source` (string) and `classes` (int,
classification only), plus a few descriptive ones (split, seed, ...).

    make_data.py digits --out digits.h5 [--n N]
    make_data.py fashion-mnist --out fmnist.h5 [--split train|test] [--n N] [--dir DIR]
    make_data.py mixture --out mix.h5 --n 1000000 --dim 64 --classes 10 [--seed 0] [--separation 3]
                         [--targets T]

Data sets:
- digits: scikit-learn's 1,797 8x8 digit images (sklearn.datasets.load_digits, shipped inside Debian's
  python3-sklearn), X = pixels / 16 in [0, 1], 64 features, 10 classes. --n keeps the first N rows.
- fashion-mnist: the IDX files of Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist/;
  60,000 train and 10,000 test 28x28 images, 10 classes), X = pixels / 255 in [0, 1], 784 features in the
  file's row-major pixel order. --split train|test (default train), --n the first N images (default all).
- mixture: a Gaussian mixture for scale tests, written in blocks of about 4M values so millions of rows never sit in memory.
  Class c has a mean m_c = separation * u_c with u_c a random unit vector in R^dim; a row is m_y + N(0, I)
  with its label y uniform over the classes. With --targets T > 0 it is a regression set instead: y =
  tanh(X A / sqrt(dim)) + 0.1 N(0, 1), A a fixed standard normal dim x T matrix, float32 (n x T); `classes`
  is then not written. Rows are a function of (seed, row index) only: the first N rows of a larger file are
  the file with --n N.

The file is written as a temporary and renamed into place when complete.

Needs: python3-numpy, python3-h5py (apt); digits also python3-sklearn; fashion-mnist also
dataset-fashion-mnist.
"""

import argparse
import gzip
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ToolError, die, need, publish, tmp_path  # noqa: E402

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path, expect_magic, limit=None):
    """Read a (gzip'ed) IDX file: big-endian magic (0x0000 type ndim), ndim uint32 sizes, then uint8 data."""
    import numpy as np

    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) != 4:
                raise ToolError(f"{path}: truncated IDX header")
            magic = int.from_bytes(head, "big")
            if magic != expect_magic:
                raise ToolError(f"{path}: IDX magic {magic} (expected {expect_magic})")
            ndim = head[3]
            dims = [int.from_bytes(f.read(4), "big") for _ in range(ndim)]
            n = dims[0] if limit is None else min(dims[0], limit)
            row = 1
            for d in dims[1:]:
                row *= d
            data = f.read(n * row)
            if len(data) != n * row:
                raise ToolError(f"{path}: truncated: {len(data)} bytes of data, expected {n * row}")
    except OSError as e:
        raise ToolError(f"{path}: {e}")
    return np.frombuffer(data, dtype=np.uint8).reshape([n] + dims[1:]), dims[0]


def write_xy(path, X, y, attrs):
    import h5py

    tmp = tmp_path(path)
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("X", data=X)
            f.create_dataset("y", data=y)
            for k, v in attrs.items():
                f.attrs[k] = v
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def take(n, total, what):
    if n is None:
        return total
    if n <= 0:
        raise ToolError(f"--n {n}: must be positive")
    if n > total:
        raise ToolError(f"--n {n}: {what} has only {total} rows")
    return n


def make_digits(args):
    need("numpy", "h5py", "sklearn")
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    n = take(args.n, d.data.shape[0], "digits")
    X = (d.data[:n] / 16.0).astype(np.float32)
    y = d.target[:n].astype(np.int64)
    write_xy(args.out, X, y, {"source": "sklearn.datasets.load_digits (X / 16)", "classes": np.int64(10)})
    return X.shape, 10


def make_fashion(args):
    need("numpy", "h5py")
    import numpy as np

    images_name, labels_name = FASHION_FILES[args.split]
    images, labels = os.path.join(args.dir, images_name), os.path.join(args.dir, labels_name)
    for p in (images, labels):
        if not os.path.exists(p):
            hint = ("apt-get install dataset-fashion-mnist" if args.dir == FASHION_DIR
                    else f"--dir {args.dir} does not hold the IDX files")
            raise ToolError(f"{p} not found: {hint}")
    _, total = read_idx(labels, 2049, limit=0)
    n = take(args.n, total, f"Fashion-MNIST {args.split}")
    img, _ = read_idx(images, 2051, limit=n)
    lab, _ = read_idx(labels, 2049, limit=n)
    if img.shape[0] != lab.shape[0]:
        raise ToolError(f"{images}: {img.shape[0]} images but {lab.shape[0]} labels")
    if lab.max(initial=0) > 9:
        raise ToolError(f"{labels}: label {int(lab.max())} out of range 0..9")
    X = (img.reshape(n, -1).astype(np.float32) / np.float32(255.0))
    y = lab.astype(np.int64)
    write_xy(args.out, X, y, {"source": f"Fashion-MNIST {args.split} (Debian dataset-fashion-mnist, X / 255)",
                              "classes": np.int64(10), "split": args.split})
    return X.shape, 10


def make_mixture(args):
    need("numpy", "h5py")
    import h5py
    import numpy as np

    n, dim, classes, targets = args.n, args.dim, args.classes, args.targets
    if n is None or n <= 0:
        raise ToolError("mixture needs --n N > 0 (rows)")
    if dim <= 0:
        raise ToolError(f"--dim {dim}: must be positive")
    if targets < 0:
        raise ToolError(f"--targets {targets}: must be >= 0")
    if targets == 0 and classes < 2:
        raise ToolError(f"--classes {classes}: a classification mixture needs at least 2")
    setup = np.random.default_rng([args.seed, 0])
    u = setup.standard_normal((max(classes, 1), dim))
    means = (args.separation * u / np.linalg.norm(u, axis=1, keepdims=True)).astype(np.float64)
    A = setup.standard_normal((dim, max(targets, 1)))

    block = max(1, 2**22 // dim)  # rows per random block: 4M values, whatever n is
    tmp = tmp_path(args.out)
    try:
        with h5py.File(tmp, "w") as f:
            chunk_rows = min(n, max(1, 2**18 // dim))
            dX = f.create_dataset("X", shape=(n, dim), dtype=np.float32, chunks=(chunk_rows, dim))
            if targets:
                dy = f.create_dataset("y", shape=(n, targets), dtype=np.float32)
            else:
                dy = f.create_dataset("y", shape=(n,), dtype=np.int64)
            # Block b's labels, noise and target noise come from generators keyed by (seed, stream, b) and are
            # drawn in row order, so a row depends on (seed, row) only: a smaller --n gives a prefix.
            for b, start in enumerate(range(0, n, block)):
                m = min(n, start + block) - start
                labels = np.random.default_rng([args.seed, 1, b]).integers(0, max(classes, 1), size=m)
                x = np.random.default_rng([args.seed, 2, b]).standard_normal((m, dim))
                if targets:
                    eps = np.random.default_rng([args.seed, 3, b]).standard_normal((m, targets))
                    dy[start:start + m] = (np.tanh(x @ A / np.sqrt(dim)) + 0.1 * eps).astype(np.float32)
                else:
                    x += means[labels]
                    dy[start:start + m] = labels.astype(np.int64)
                dX[start:start + m] = x.astype(np.float32)
            if targets:
                f.attrs["source"] = (f"regression mixture: tanh(X A / sqrt(dim)) + 0.1 noise, X ~ N(0, I); "
                                     f"seed {args.seed}")
            else:
                f.attrs["source"] = (f"Gaussian mixture: {classes} classes, means at distance {args.separation} "
                                     f"from 0, unit noise; seed {args.seed}")
                f.attrs["classes"] = np.int64(classes)
                f.attrs["separation"] = float(args.separation)
            f.attrs["seed"] = np.int64(args.seed)
        publish(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return (n, dim), (None if targets else classes)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="make_data.py", description=__doc__.split("\n\n")[0],
        epilog="Needs python3-numpy and python3-h5py; digits: python3-sklearn; fashion-mnist: "
               "dataset-fashion-mnist (apt-get install ...). See the module docstring for the file layout.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", choices=["digits", "fashion-mnist", "mixture"])
    ap.add_argument("--out", required=True, help="output HDF5 file")
    ap.add_argument("--n", type=int, default=None,
                    help="rows: the first N (digits, fashion-mnist; default all); mixture: required")
    ap.add_argument("--split", choices=["train", "test"], default="train", help="fashion-mnist split")
    ap.add_argument("--dir", default=FASHION_DIR, help="fashion-mnist IDX folder (default %(default)s)")
    ap.add_argument("--dim", type=int, default=64, help="mixture: features (default %(default)s)")
    ap.add_argument("--classes", type=int, default=10, help="mixture: classes (default %(default)s)")
    ap.add_argument("--separation", type=float, default=3.0,
                    help="mixture: distance of each class mean from 0, in noise standard deviations "
                         "(default %(default)s)")
    ap.add_argument("--targets", type=int, default=0,
                    help="mixture: T > 0 writes a regression set with float32 (n x T) targets (for loss=mse)")
    ap.add_argument("--seed", type=int, default=0, help="mixture: random seed (default %(default)s)")
    args = ap.parse_args(argv)
    try:
        if os.path.dirname(os.path.abspath(args.out)) and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
            raise ToolError(f"--out {args.out}: the folder does not exist")
        fn = {"digits": make_digits, "fashion-mnist": make_fashion, "mixture": make_mixture}[args.dataset]
        shape, classes = fn(args)
    except ToolError as e:
        die(str(e), 65 if "not found" not in str(e) else 2)
    kind = f"{classes} classes" if classes else "regression targets"
    print(f"wrote {args.out}: X {shape[0]} x {shape[1]} float32, {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
