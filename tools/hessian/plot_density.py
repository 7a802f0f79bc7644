#!/usr/bin/env python3
"""Plot the Hessian spectral density that skein's `hessian` job wrote, with its extreme eigenvalues.

    plot_density.py OUT/hessian.h5 [MORE.h5 ...] --out density.png [--epochs 0,5] [--sigma S] [--ymin Y]
                    [--xlim LO,HI] [--no-eigenvalues] [--labels A,B] [--title TEXT] [--dpi 120]

Reads `/density/grid` and `/density/values` (the smoothed SLQ density) and draws it on a log y-scale, with
the top eigenvalues `/eigenvalues/top` as dashed and the bottom ones `/eigenvalues/bottom` as dotted vertical
lines in the curve's colour. The title gives the trace, `/trace@mean` ± `@stderr` (and `@samples`), and the
root attributes `parameters`, `samples`, `loss` when present. A file with groups `/epoch_E` (one per analysed
epoch of a training run, each with the same layout inside) gives one curve per epoch, its trace in the
legend; --epochs picks some of them. Several files give one curve each (e.g. float32 against float64, or
hessian against ggn), labelled by their folders or --labels.

--sigma S redraws the density from the raw quadrature `/density/nodes` and `/density/weights` with a
Gaussian kernel of standard deviation S (in eigenvalue units) instead of the job's smoothing, on the same
grid (or, with no grid, 2,000 points over the nodes' range): useful to compare with PyHessian's plots, whose
width is sqrt(1e-5 * max(1, lambda_max - lambda_min)).

Values at or below 0 (and under --ymin, default 1e-10 of the peak) are drawn at the floor.

Needs: python3-matplotlib, python3-h5py, python3-numpy (apt).
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import ToolError, die, need  # noqa: E402


def _attr(obj, name):
    v = obj.attrs.get(name) if obj is not None else None
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode()
    if hasattr(v, "shape") and v.shape == ():
        v = v.item()
    if hasattr(v, "shape") and v.shape == (1,):
        v = v[0].item()
    return v.decode() if isinstance(v, bytes) else v


def _dataset(g, path):
    import numpy as np

    return np.asarray(g[path][...], dtype=float).ravel() if path in g else None


def read_analysis(g, where):
    """One analysis (the file's root or an /epoch_E group): dict of numpy arrays and the trace."""
    a = {"grid": _dataset(g, "density/grid"), "values": _dataset(g, "density/values"),
         "nodes": _dataset(g, "density/nodes"), "weights": _dataset(g, "density/weights"),
         "top": _dataset(g, "eigenvalues/top"), "bottom": _dataset(g, "eigenvalues/bottom"), "trace": None}
    t = g.get("trace")
    if t is not None:
        a["trace"] = {k: _attr(t, k) for k in ("mean", "stderr", "samples")}
    if a["values"] is not None and a["grid"] is not None and a["values"].size != a["grid"].size:
        raise ToolError(f"{where}: /density/values has {a['values'].size} points but /density/grid "
                        f"{a['grid'].size}")
    return a


def smooth(nodes, weights, grid, sigma):
    """sum_k w_k N(grid; node_k, sigma^2) / sum_k w_k: the density from raw Gauss-quadrature nodes/weights."""
    import numpy as np

    out = np.zeros_like(grid)
    total = weights.sum()
    for lo in range(0, nodes.size, 256):
        d = (grid[:, None] - nodes[None, lo:lo + 256]) / sigma
        out += (np.exp(-0.5 * d * d) * weights[None, lo:lo + 256]).sum(axis=1)
    return out / (total * sigma * np.sqrt(2 * np.pi))


def collect(paths, epochs_wanted, labels=None):
    """[(label, analysis, file attributes)] in plotting order."""
    import h5py

    if labels is not None and len(labels) != len(paths):
        raise ToolError(f"--labels gives {len(labels)} label(s) for {len(paths)} file(s)")
    curves = []
    for index, path in enumerate(paths):
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise ToolError(f"{path}: cannot open as HDF5: {e}")
        with f:
            attrs = {k: _attr(f, k) for k in ("parameters", "samples", "loss", "operator", "precision")}
            epochs = sorted((int(m.group(1)), k) for k in f.keys() if (m := re.fullmatch(r"epoch_(\d+)", k)))
            name = os.path.basename(os.path.dirname(os.path.abspath(path))) if len(paths) > 1 else ""
            if labels is not None:
                name = labels[index]
            if epochs:
                if epochs_wanted is not None:
                    missing = sorted(set(epochs_wanted) - {e for e, _ in epochs})
                    if missing:
                        raise ToolError(f"{path}: no group for epoch(s) {missing}; it has "
                                        f"{[e for e, _ in epochs]}")
                    epochs = [(e, k) for e, k in epochs if e in epochs_wanted]
                for e, k in epochs:
                    label = f"{name} epoch {e}".strip()
                    curves.append((label, read_analysis(f[k], f"{path}:/{k}"), attrs))
            else:
                if epochs_wanted is not None:
                    raise ToolError(f"{path}: --epochs given but the file has no /epoch_E groups")
                curves.append((name, read_analysis(f, path), attrs))
    return curves


def fmt_trace(t):
    if not t or t.get("mean") is None:
        return None
    s = f"trace {t['mean']:.4g}"
    if t.get("stderr") is not None:
        s += f" ± {t['stderr']:.2g}"
    if t.get("samples") is not None:
        s += f" ({int(t['samples'])} samples)"
    return s


def plot(curves, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    peak = 0.0
    drawn = []
    for i, (label, a, _) in enumerate(curves):
        grid, values = a["grid"], a["values"]
        if args.sigma is not None:
            if a["nodes"] is None or a["weights"] is None:
                raise ToolError(f"{label or 'file'}: --sigma needs /density/nodes and /density/weights")
            if a["nodes"].size != a["weights"].size:
                raise ToolError(f"{label or 'file'}: /density/nodes and /density/weights differ in size")
            if grid is None:
                lo, hi = a["nodes"].min(), a["nodes"].max()
                pad = 3 * args.sigma + 0.01 * max(hi - lo, 1e-12)
                grid = np.linspace(lo - pad, hi + pad, 2000)
            values = smooth(a["nodes"], a["weights"], grid, args.sigma)
        if grid is None or values is None:
            raise ToolError(f"{label or 'file'}: no /density/grid and /density/values (was the density run, "
                            f"slq_vectors > 0?)")
        peak = max(peak, float(np.nanmax(values)) if values.size else 0.0)
        drawn.append((label, a, grid, values, colors[i % len(colors)]))
    floor = args.ymin if args.ymin is not None else (peak * 1e-10 if peak > 0 else 1e-12)
    for label, a, grid, values, color in drawn:
        tr = fmt_trace(a["trace"])
        text = label
        if len(drawn) > 1 and tr:
            text = f"{label}: {tr}" if label else tr
        ax.semilogy(grid, np.maximum(values, floor), color=color, lw=1.2, label=text or "density")
        if not args.no_eigenvalues:
            for ev, style in ((a["top"], "--"), (a["bottom"], ":")):
                if ev is not None:
                    for x in ev:
                        ax.axvline(x, color=color, ls=style, lw=0.8, alpha=0.8)
    # legend entries for the line styles
    if not args.no_eigenvalues:
        if any(a["top"] is not None and a["top"].size for _, a, *_ in drawn):
            k = max(a["top"].size for _, a, *_ in drawn if a["top"] is not None)
            ax.plot([], [], "k--", lw=0.8, label=f"top {k} eigenvalues")
        if any(a["bottom"] is not None and a["bottom"].size for _, a, *_ in drawn):
            k = max(a["bottom"].size for _, a, *_ in drawn if a["bottom"] is not None)
            ax.plot([], [], "k:", lw=0.8, label=f"bottom {k} eigenvalues")
    ax.set_ylim(bottom=floor)
    if args.xlim:
        ax.set_xlim(*args.xlim)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (log scale)")
    title = args.title
    if title is None:
        attrs = curves[0][2]
        bits = []
        if attrs.get("parameters") is not None:
            bits.append(f"{int(attrs['parameters']):,} parameters")
        if attrs.get("samples") is not None:
            bits.append(f"{int(attrs['samples']):,} samples")
        for k in ("loss", "operator", "precision"):
            if attrs.get(k):
                bits.append(str(attrs[k]))
        title = "Hessian spectral density" + (" — " + ", ".join(bits) if bits else "")
        if len(drawn) == 1 and fmt_trace(drawn[0][1]["trace"]):
            title += "\n" + fmt_trace(drawn[0][1]["trace"])
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="plot_density.py", description=__doc__.split("\n\n")[0],
                                 epilog="Needs python3-matplotlib, python3-h5py, python3-numpy (apt-get install "
                                        "...). See the module docstring for what is read.")
    ap.add_argument("files", nargs="+", help="hessian.h5 file(s) written by `skein run hessian`")
    ap.add_argument("--out", required=True, help="output image (.png, .pdf, .svg)")
    ap.add_argument("--epochs", help="comma-separated epochs to draw (files with /epoch_E groups)")
    ap.add_argument("--sigma", type=float, help="re-smooth the raw nodes/weights with this Gaussian width")
    ap.add_argument("--ymin", type=float, help="floor of the log y-axis (default 1e-10 of the peak)")
    ap.add_argument("--xlim", help="LO,HI of the x-axis")
    ap.add_argument("--no-eigenvalues", action="store_true", help="do not mark the top/bottom eigenvalues")
    ap.add_argument("--labels", help="comma-separated curve labels, one per file (default: each file's folder)")
    ap.add_argument("--title", help="replace the title")
    ap.add_argument("--dpi", type=int, default=120)
    args = ap.parse_args(argv)
    need("numpy", "h5py", "matplotlib")
    try:
        epochs = None
        if args.epochs:
            try:
                epochs = [int(x) for x in args.epochs.split(",") if x.strip()]
            except ValueError:
                raise ToolError(f"--epochs {args.epochs!r}: expected comma-separated integers")
        if args.xlim:
            try:
                lo, hi = (float(x) for x in args.xlim.split(","))
            except ValueError:
                raise ToolError(f"--xlim {args.xlim!r}: expected LO,HI")
            args.xlim = (lo, hi)
        if args.sigma is not None and not args.sigma > 0:
            raise ToolError(f"--sigma {args.sigma}: must be positive")
        for p in args.files:
            if not os.path.exists(p):
                raise ToolError(f"{p}: no such file")
        labels = args.labels.split(",") if args.labels else None
        curves = collect(args.files, epochs, labels)
        plot(curves, args)
    except ToolError as e:
        die(str(e), 65)
    print(f"wrote {args.out} ({len(curves)} curve{'s' if len(curves) != 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
