#!/usr/bin/env python3
"""Export a PyTorch MLP to the model file of skein's `hessian` job, and load one back into PyTorch.

Command line:

    export_torch.py MODEL.pt --loss cross_entropy|mse --out M.h5 [--activation tanh|relu|gelu|softplus]

MODEL.pt is what torch.save wrote: a whole nn.Sequential (torch.save(model, ...)), or a state_dict
(torch.save(model.state_dict(), ...); also a checkpoint dict holding one under `state_dict`,
`model_state_dict` or `model`). A state_dict does not say which activation sits between the layers, so
--activation is required for one. Its Linear layers are taken in the state_dict's order.

From Python (with tools/hessian on sys.path):

    from export_torch import export_sequential, load_sequential, torch_loss, load_data
    export_sequential(model, "M.h5", loss="cross_entropy")   # model: nn.Sequential of Linear + activation
    model = load_sequential("M.h5")                          # an nn.Sequential with the file's weights
    criterion = torch_loss(model.skein_loss)                 # nn.CrossEntropyLoss() or nn.MSELoss()
    X, y = load_data("D.h5", dtype=torch.float32)            # the data file as tensors

What maps: an nn.Sequential (nested Sequentials are flattened) of nn.Linear layers with a bias, one kind of
activation after every Linear except the last -- nn.Tanh, nn.ReLU, nn.GELU (approximate='none', the erf
form), nn.Softplus (beta=1) -- and, ignored, nn.Identity, nn.Dropout (the Hessian is taken in eval mode, as
PyHessian does) and an nn.Flatten before the first Linear. The file is `/model` with attributes
`layer_sizes`, `activation`, `loss` and datasets W0, b0, W1, ... (Wi of shape (out, in), exactly
nn.Linear.weight), so the flat parameter order is torch's parameters_to_vector(model.parameters()). Anything
else is refused with a message: convolutions, normalisation layers, Linear(bias=False), mixed activations,
two Linears with no activation between them, an activation or softmax after the last Linear (the losses take
logits: cross_entropy is torch.nn.CrossEntropyLoss(), mse is torch.nn.MSELoss(), both means). Weights keep
their precision when float64, otherwise they are stored as float32.

Needs: python3-torch, python3-numpy, python3-h5py (apt).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ACTIVATIONS, LOSSES, ToolError, check_names, die, need, read_model, write_model  # noqa: E402

if __name__ != "__main__":
    need("torch", "numpy", "h5py", script=False)


class ExportError(ToolError):
    """The model cannot be expressed in the hessian model file."""


def _leaves(module, prefix=""):
    import torch.nn as nn

    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            yield from _leaves(child, f"{prefix}{name}.")
    else:
        yield prefix.rstrip(".") or type(module).__name__, module


def _activation_name(m):
    import torch.nn as nn

    if isinstance(m, nn.Tanh):
        return "tanh"
    if isinstance(m, nn.ReLU):
        return "relu"
    if isinstance(m, nn.GELU):
        approx = getattr(m, "approximate", "none")
        if approx != "none":
            raise ExportError(f"nn.GELU(approximate={approx!r}): only the exact (erf) GELU maps to "
                              f"activation=gelu")
        return "gelu"
    if isinstance(m, nn.Softplus):
        if m.beta != 1:
            raise ExportError(f"nn.Softplus(beta={m.beta}): only beta=1 maps to activation=softplus")
        return "softplus"
    return None


def _refusal(name, m):
    import torch.nn as nn

    kind = type(m).__name__
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                      nn.ConvTranspose3d)):
        why = "convolutions cannot be expressed: the hessian job's model is dense layers only"
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)):
        why = "normalisation layers cannot be expressed (dense layers and one activation only)"
    elif isinstance(m, (nn.Softmax, nn.LogSoftmax, nn.Sigmoid)):
        why = ("the model must end in logits: cross_entropy applies log-softmax itself, like "
               "torch.nn.CrossEntropyLoss; drop this layer")
    else:
        why = "only Linear, Tanh, ReLU, GELU, Softplus (and Identity, Dropout, a leading Flatten) map"
    return ExportError(f"layer {name} ({kind}): {why}")


def sequential_layers(model, activation=None):
    """Check `model` and return (layer_sizes, activation, [weight (out,in)], [bias]) as numpy arrays."""
    import torch
    import torch.nn as nn

    if isinstance(model, nn.Linear):
        model = nn.Sequential(model)
    if not isinstance(model, nn.Sequential):
        raise ExportError(f"{type(model).__name__} is not an nn.Sequential: its forward() order cannot be read; "
                          f"rebuild it as nn.Sequential(Linear, activation, Linear, ...) with the same weights")
    linears, acts = [], []
    pending_act = None  # activation seen since the last Linear
    for name, m in _leaves(model):
        if isinstance(m, nn.Linear):
            if m.bias is None:
                raise ExportError(f"layer {name} (Linear, bias=False): every layer needs a bias in the model "
                                  f"file; add one initialised to zero")
            if linears and pending_act is None:
                raise ExportError(f"layer {name}: two Linear layers with no activation between them cannot be "
                                  f"expressed (fold them into one, or add the activation)")
            if pending_act is not None:
                acts.append(pending_act)
            pending_act = None
            linears.append((name, m))
            continue
        a = _activation_name(m)
        if a is not None:
            if not linears:
                raise ExportError(f"layer {name} ({type(m).__name__}): an activation before the first Linear "
                                  f"cannot be expressed")
            if pending_act is not None:
                raise ExportError(f"layer {name} ({type(m).__name__}): two activations in a row cannot be "
                                  f"expressed")
            pending_act = (name, a)
            continue
        if isinstance(m, (nn.Identity, nn.Dropout)):
            continue
        if isinstance(m, nn.Flatten) and not linears:
            continue
        raise _refusal(name, m)
    if not linears:
        raise ExportError("the model has no Linear layer")
    if pending_act is not None:
        raise ExportError(f"layer {pending_act[0]} ({pending_act[1]}): an activation after the last Linear cannot "
                          f"be expressed: the model must end in logits (the losses take them)")
    kinds = sorted({a for _, a in acts})
    if len(kinds) > 1:
        where = ", ".join(f"{n}={a}" for n, a in acts)
        raise ExportError(f"mixed activations ({where}): the model file has one activation for every layer")
    act = kinds[0] if kinds else (activation or "tanh")
    if kinds and activation and activation != act:
        raise ExportError(f"--activation {activation} but the model uses {act}")
    weights, biases = [], []
    sizes = [linears[0][1].in_features]
    for name, lin in linears:
        if lin.in_features != sizes[-1]:
            raise ExportError(f"layer {name}: in_features {lin.in_features} does not chain with the previous "
                              f"layer's {sizes[-1]} outputs")
        w, b = lin.weight.detach().cpu(), lin.bias.detach().cpu()
        wide = w.dtype == torch.float64 and b.dtype == torch.float64
        weights.append(w.to(torch.float64 if wide else torch.float32).numpy())
        biases.append(b.to(torch.float64 if wide else torch.float32).numpy())
        sizes.append(lin.out_features)
    return sizes, act, weights, biases


def export_sequential(model, path, loss, activation=None):
    """Write `model` (nn.Sequential of Linear + one activation kind) to the hessian model file at `path`.
    `loss` is 'cross_entropy' or 'mse'; `activation` names it when the model has a single Linear (no
    activation to read; default tanh, unused). Raises ExportError (a ToolError) for what cannot map.
    Returns the layer sizes."""
    if loss not in LOSSES:
        raise ExportError(f"unknown loss {loss!r}: one of {', '.join(LOSSES)}")
    sizes, act, weights, biases = sequential_layers(model, activation)
    check_names(act, loss)
    write_model(path, sizes, act, loss, weights, biases, attrs={"source": "export_torch.py"})
    return sizes


def _state_dict_layers(state):
    """Linear layers of a state_dict in its order: [(prefix, weight, bias)]; refuses what cannot map."""
    weights = [k for k in state if k.endswith("weight")]
    used = set()
    layers = []
    for k in weights:
        prefix = k[: -len("weight")]
        w = state[k]
        if getattr(w, "ndim", 0) != 2:
            raise ExportError(f"{k} has shape {tuple(w.shape)}: only Linear (2-D) weights can be expressed "
                              f"(a convolution or normalisation layer?)")
        bk = prefix + "bias"
        if bk not in state:
            raise ExportError(f"{k} has no {bk}: Linear(bias=False) cannot be expressed")
        layers.append((prefix.rstrip("."), w, state[bk]))
        used.update((k, bk))
    other = [k for k in state if k not in used]
    if other:
        raise ExportError(f"state_dict entries that are not Linear weights or biases: {', '.join(other[:5])}"
                          + (" ..." if len(other) > 5 else "") + " (normalisation layers cannot be expressed)")
    if not layers:
        raise ExportError("the state_dict holds no Linear weights")
    return layers


def export_state_dict(state, path, loss, activation):
    """Write a state_dict of Linear layers (in its order) with `activation` between them."""
    import torch.nn as nn

    if activation is None:
        raise ExportError("a state_dict does not record the activation: pass --activation "
                          f"({', '.join(ACTIVATIONS)})")
    layers = _state_dict_layers(state)
    mods = []
    for i, (prefix, w, b) in enumerate(layers):
        lin = nn.Linear(w.shape[1], w.shape[0]).to(w.dtype)
        if tuple(b.shape) != (w.shape[0],):
            raise ExportError(f"{prefix}.bias has shape {tuple(b.shape)}, expected ({w.shape[0]},)")
        lin.weight.data.copy_(w)
        lin.bias.data.copy_(b)
        if i:
            mods.append(_make_activation(activation))
        mods.append(lin)
    for i in range(1, len(layers)):
        if layers[i][1].shape[1] != layers[i - 1][1].shape[0]:
            raise ExportError(f"{layers[i][0]}.weight has {layers[i][1].shape[1]} inputs but "
                              f"{layers[i - 1][0]}.weight has {layers[i - 1][1].shape[0]} outputs")
    return export_sequential(nn.Sequential(*mods), path, loss, activation)


def _make_activation(name):
    import torch.nn as nn

    return {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "softplus": nn.Softplus}[name]()


def load_sequential(path, dtype=None):
    """The model file at `path` as an nn.Sequential (Linear, activation, ..., Linear) holding its weights, in
    eval mode. dtype: torch.float32 / torch.float64 (default: the file's). The loss name is in
    `model.skein_loss`, the activation in `model.skein_activation`."""
    import numpy as np
    import torch
    import torch.nn as nn

    m = read_model(path)
    if dtype is None:
        dtype = torch.float64 if m["weights"][0].dtype == np.float64 else torch.float32
    mods = []
    for i, (w, b) in enumerate(zip(m["weights"], m["biases"])):
        if i:
            mods.append(_make_activation(m["activation"]))
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.asarray(w)))
            lin.bias.copy_(torch.from_numpy(np.asarray(b)))
        mods.append(lin)
    model = nn.Sequential(*mods).to(dtype).eval()
    model.skein_loss = m["loss"]
    model.skein_activation = m["activation"]
    return model


def torch_loss(name):
    """The torch loss the hessian job's `loss` means: mean over samples (mse: over all n x t elements)."""
    import torch.nn as nn

    if name == "cross_entropy":
        return nn.CrossEntropyLoss()
    if name == "mse":
        return nn.MSELoss()
    raise ExportError(f"unknown loss {name!r}: one of {', '.join(LOSSES)}")


def load_data(path, dtype=None, n=None):
    """The data file's (X, y) as tensors: X (n x d) in `dtype` (default float32); y int64 labels, or targets in
    `dtype` (a 1-D target vector becomes n x 1, as the job reads it). n: only the first n rows."""
    import h5py
    import numpy as np
    import torch

    dtype = dtype or torch.float32
    with h5py.File(path, "r") as f:
        for k in ("X", "y"):
            if k not in f:
                raise ToolError(f"{path}: no dataset /{k}")
        X = f["X"][: n] if n else f["X"][...]
        y = f["y"][: n] if n else f["y"][...]
    if X.ndim != 2:
        raise ToolError(f"{path}: /X has shape {X.shape}, expected (n, d)")
    if y.shape[0] != X.shape[0]:
        raise ToolError(f"{path}: /X has {X.shape[0]} rows but /y {y.shape[0]}")
    X = torch.from_numpy(np.ascontiguousarray(X)).to(dtype)
    if np.issubdtype(y.dtype, np.integer):
        y = torch.from_numpy(y.astype(np.int64))
    else:
        y = torch.from_numpy(np.ascontiguousarray(y.reshape(y.shape[0], -1))).to(dtype)
    return X, y


def _load_torch_file(path):
    import torch

    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except TypeError:  # torch < 1.13 has no weights_only
            return torch.load(path, map_location="cpu")
    except Exception as e:  # unpickling errors come in many types
        raise ToolError(f"{path}: torch.load failed: {type(e).__name__}: {e}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="export_torch.py", description=__doc__.split("\n\n")[0],
                                 epilog="Needs python3-torch, python3-numpy, python3-h5py (apt-get install ...). "
                                        "See the module docstring for what maps and the Python API.")
    ap.add_argument("model", help="a torch.save'd nn.Sequential or state_dict (.pt/.pth)")
    ap.add_argument("--loss", required=True, choices=LOSSES)
    ap.add_argument("--activation", choices=ACTIVATIONS,
                    help="required for a state_dict; for a Sequential it must agree with the model's")
    ap.add_argument("--out", required=True, help="output HDF5 model file")
    args = ap.parse_args(argv)
    need("torch", "numpy", "h5py")
    import torch.nn as nn

    try:
        obj = _load_torch_file(args.model)
        if isinstance(obj, dict):
            for key in ("state_dict", "model_state_dict", "model"):
                if isinstance(obj.get(key), (dict, nn.Module)):
                    obj = obj[key]
                    break
        if isinstance(obj, nn.Module):
            sizes = export_sequential(obj, args.out, args.loss, args.activation)
        elif isinstance(obj, dict):
            sizes = export_state_dict(obj, args.out, args.loss, args.activation)
        else:
            raise ToolError(f"{args.model}: holds a {type(obj).__name__}, not an nn.Module or a state_dict")
        m = read_model(args.out)
    except ToolError as e:
        die(str(e), 65)
    params = sum(w.size + b.size for w, b in zip(m["weights"], m["biases"]))
    print(f"wrote {args.out}: layers {','.join(map(str, sizes))}, {m['activation']}, {m['loss']}, "
          f"{params:,} parameters ({m['weights'][0].dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
