"""Shared helpers of the tools/hessian scripts: dependency checks with the Debian package to install, the
model/data file contract (layer sizes, activation and loss names), and atomic HDF5 writes.

Not a script of its own. The scripts import it from their own folder.
"""

import importlib.util
import os
import subprocess
import sys

ACTIVATIONS = ("tanh", "relu", "gelu", "softplus")
LOSSES = ("cross_entropy", "mse")

# Python module -> Debian package that provides it for /usr/bin/python3.
APT = {"numpy": "python3-numpy", "h5py": "python3-h5py", "sklearn": "python3-sklearn",
       "matplotlib": "python3-matplotlib", "torch": "python3-torch", "scipy": "python3-scipy"}

DEBIAN_PYTHON = "/usr/bin/python3"
_REEXEC_FLAG = "SKEIN_HESSIAN_TOOLS_REEXEC"


class ToolError(Exception):
    """An error with a message meant for the user (no traceback)."""


def die(message, code=2):
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "tools/hessian"
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def need(*modules, script=True):
    """Make sure `modules` import. When run as a script under an interpreter that lacks them while Debian's
    /usr/bin/python3 has them (a pyenv or conda `python3` first on PATH), re-run the script under
    /usr/bin/python3; otherwise stop with the apt-get command that installs them."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    if (script and os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON)
            and os.access(DEBIAN_PYTHON, os.X_OK) and not os.environ.get(_REEXEC_FLAG)):
        probe = subprocess.run([DEBIAN_PYTHON, "-c", "import " + ", ".join(modules)], capture_output=True)
        if probe.returncode == 0:
            env = dict(os.environ, **{_REEXEC_FLAG: "1"})
            os.execve(DEBIAN_PYTHON, [DEBIAN_PYTHON] + sys.argv, env)
    packages = " ".join(APT.get(m, m) for m in missing)
    message = (f"needs the Python module(s) {', '.join(missing)}, which {sys.executable} cannot import: "
               f"apt-get install {packages}")
    if os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON):
        message += f" (Debian's packages are for {DEBIAN_PYTHON})"
    if script:
        die(message)
    raise ImportError(message)


def parse_layers(text):
    try:
        sizes = [int(x) for x in str(text).replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise ToolError(f"--layers {text!r}: expected comma-separated integers such as 784,1024,512,10")
    if len(sizes) < 2:
        raise ToolError(f"--layers {text!r}: needs at least an input and an output size")
    if any(s <= 0 for s in sizes):
        raise ToolError(f"--layers {text!r}: every size must be positive")
    return sizes


def check_names(activation, loss):
    if activation not in ACTIVATIONS:
        raise ToolError(f"unknown activation {activation!r}: one of {', '.join(ACTIVATIONS)}")
    if loss not in LOSSES:
        raise ToolError(f"unknown loss {loss!r}: one of {', '.join(LOSSES)}")


def tmp_path(path):
    d, b = os.path.split(os.path.abspath(path))
    return os.path.join(d, f".{b}.tmp{os.getpid()}")


def publish(tmp, path):
    """Rename the finished temporary file into place (a failed run leaves no half-written file at `path`)."""
    os.replace(tmp, path)


def write_model(path, layer_sizes, activation, loss, weights, biases, attrs=None):
    """Write the model file of the contract: group /model with attributes layer_sizes (int64), activation,
    loss and datasets W0, b0, W1, b1, ... (Wi of shape (out, in), as torch stores nn.Linear.weight)."""
    import h5py
    import numpy as np

    check_names(activation, loss)
    sizes = [int(s) for s in layer_sizes]
    if len(weights) != len(sizes) - 1 or len(biases) != len(sizes) - 1:
        raise ToolError(f"{len(weights)} weight matrices and {len(biases)} biases for {len(sizes)} layer sizes")
    for i, (w, b) in enumerate(zip(weights, biases)):
        if w.shape != (sizes[i + 1], sizes[i]) or b.shape != (sizes[i + 1],):
            raise ToolError(f"layer {i}: W{i} has shape {w.shape} and b{i} {b.shape}, expected "
                            f"({sizes[i + 1]}, {sizes[i]}) and ({sizes[i + 1]},)")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ToolError(f"layer {i}: W{i} or b{i} holds NaN or Inf")
    tmp = tmp_path(path)
    try:
        with h5py.File(tmp, "w") as f:
            g = f.create_group("model")
            g.attrs["layer_sizes"] = np.asarray(sizes, dtype=np.int64)
            g.attrs["activation"] = activation
            g.attrs["loss"] = loss
            for i, (w, b) in enumerate(zip(weights, biases)):
                g.create_dataset(f"W{i}", data=np.ascontiguousarray(w))
                g.create_dataset(f"b{i}", data=np.ascontiguousarray(b))
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _text(v):
    if isinstance(v, bytes):
        return v.decode()
    if hasattr(v, "item") and getattr(v, "shape", None) == ():
        v = v.item()
        return v.decode() if isinstance(v, bytes) else str(v)
    return str(v)


def read_model(path):
    """Read and check a model file; return dict(layer_sizes, activation, loss, weights, biases) (numpy)."""
    import h5py
    import numpy as np

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ToolError(f"{path}: cannot open as HDF5: {e}")
    with f:
        if "model" not in f:
            raise ToolError(f"{path}: no group /model (not a skein hessian model file)")
        g = f["model"]
        for key in ("activation", "loss"):
            if key not in g.attrs:
                raise ToolError(f"{path}: /model lacks the attribute {key!r}")
        if "layer_sizes" in g.attrs:
            sizes = [int(s) for s in np.asarray(g.attrs["layer_sizes"]).ravel()]
        else:  # optional in the contract: read it off W0, W1, ...
            count = 0
            while f"W{count}" in g:
                count += 1
            if count == 0:
                raise ToolError(f"{path}: /model has no layer_sizes attribute and no W0")
            sizes = [int(g["W0"].shape[1])] + [int(g[f"W{i}"].shape[0]) for i in range(count)]
        activation, loss = _text(g.attrs["activation"]), _text(g.attrs["loss"])
        check_names(activation, loss)
        weights, biases = [], []
        for i in range(len(sizes) - 1):
            for name in (f"W{i}", f"b{i}"):
                if name not in g:
                    raise ToolError(f"{path}: /model/{name} is missing (layer_sizes {sizes})")
            w, b = g[f"W{i}"][...], g[f"b{i}"][...]
            if w.shape != (sizes[i + 1], sizes[i]) or b.shape != (sizes[i + 1],):
                raise ToolError(f"{path}: /model/W{i} {w.shape}, b{i} {b.shape}; layer_sizes {sizes} needs "
                                f"({sizes[i + 1]}, {sizes[i]}) and ({sizes[i + 1]},)")
            weights.append(w)
            biases.append(b)
    return {"layer_sizes": sizes, "activation": activation, "loss": loss, "weights": weights, "biases": biases}
