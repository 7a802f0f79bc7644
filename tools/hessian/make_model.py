#!/usr/bin/env python3
"""Write a freshly initialised MLP as a model file for skein's `hessian` job (numpy only, no torch).

    make_model.py --layers 64,32,10 --activation tanh --loss cross_entropy --seed 0 --out M.h5
                  [--dtype float32|float64]

The file: group `/model` with attributes `layer_sizes` (int64, d0..dL), `activation` (tanh, relu, gelu,
softplus; applied after every layer but the last), `loss` (cross_entropy: labels, softmax cross-entropy as
torch.nn.CrossEntropyLoss(); mse: targets, torch.nn.MSELoss(), the mean over all n x t elements), and
datasets `/model/W0`, `/model/b0`, `/model/W1`, ... with `Wi` of shape (out, in) as PyTorch stores
`nn.Linear.weight`. The flat parameter vector is W0, b0, W1, b1, ... each row-major, the order of torch's
`parameters_to_vector(model.parameters())`.

The initialisation is PyTorch's default for nn.Linear: W and b uniform in (-1/sqrt(in), 1/sqrt(in)), drawn
with numpy's default_rng(seed) (W0, b0, W1, b1, ... in that order): the same distribution as torch, not the
same numbers. `export_torch.py` writes a torch model's own weights instead.

Needs: python3-numpy, python3-h5py (apt).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ACTIVATIONS, LOSSES, ToolError, die, need, parse_layers, write_model  # noqa: E402


def init_mlp(layer_sizes, seed=0, dtype="float32"):
    """Weights (out, in) and biases (out,) of nn.Linear's default initialisation, as numpy arrays."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        weights.append(rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(dtype))
        biases.append(rng.uniform(-bound, bound, size=(fan_out,)).astype(dtype))
    return weights, biases


def main(argv=None):
    ap = argparse.ArgumentParser(prog="make_model.py", description=__doc__.split("\n\n")[0],
                                 epilog="Needs python3-numpy and python3-h5py (apt-get install ...).")
    ap.add_argument("--layers", required=True, help="layer sizes d0,d1,...,dL, e.g. 784,1024,512,10")
    ap.add_argument("--activation", default="tanh", choices=ACTIVATIONS)
    ap.add_argument("--loss", default="cross_entropy", choices=LOSSES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                    help="stored precision of the weights (default %(default)s)")
    ap.add_argument("--out", required=True, help="output HDF5 file")
    args = ap.parse_args(argv)
    need("numpy", "h5py")
    import numpy as np

    try:
        sizes = parse_layers(args.layers)
        if args.loss == "cross_entropy" and sizes[-1] < 2:
            raise ToolError(f"--layers {args.layers}: cross_entropy needs at least 2 outputs (classes)")
        weights, biases = init_mlp(sizes, args.seed, args.dtype)
        write_model(args.out, sizes, args.activation, args.loss, weights, biases,
                    attrs={"source": f"make_model.py seed {args.seed} (nn.Linear default init)",
                           "seed": np.int64(args.seed)})
    except ToolError as e:
        die(str(e))
    except OSError as e:
        die(f"{args.out}: {e}", 74)
    params = sum(w.size + b.size for w, b in zip(weights, biases))
    print(f"wrote {args.out}: layers {','.join(map(str, sizes))}, {args.activation}, {args.loss}, "
          f"{params:,} parameters ({args.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
