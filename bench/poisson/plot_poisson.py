#!/usr/bin/env python3
"""Plot skein `poisson` runs: residual histories on one figure, and a mid-plane slice of the solution.

    plot_poisson.py --out poisson.png RUN1/poisson.h5 [RUN2/poisson.h5 ...] [--history hypre-pfmg.txt ...]
                    [--slice FILE.h5] [--title TEXT] [--dpi 120]

Left panel: relative residual ||r_k||_2 / ||b||_2 against iteration k, log scale, one line per skein file
(its /history/residual dataset) and per --history text file (bench/poisson/hypre_poisson --history or
pyamg_poisson.py --history: "iteration relative_residual" lines, '#' comments; the first comment names the
solver). A skein history is divided by its first entry when that entry is not 1: with x0 = 0, r_0 = b, so
this is ||r_k|| / ||b|| whether skein stores absolute or relative norms.

Right panel: the slice z = nz // 2 of /solution of the first h5 file (or --slice). /solution is a 3-D dataset
in C order [nx][ny][nz] (z fastest), as skein writes its distributed arrays in global index space; the slice
is solution[:, :, nz // 2], drawn with x to the right and y up. /cell_type (uint8: 0 fluid, 1 solid, 2 air,
same shape) is drawn on it: solid cells grey with a black contour, air cells light blue with a navy dashed
contour; the solution is shown on fluid cells only. Needs h5py, numpy and matplotlib (the bench venv has them).
"""

import argparse
import os
import re
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CELL_NAMES = {0: "fluid", 1: "solid", 2: "air"}


def attr_text(v):
    if isinstance(v, bytes):
        return v.decode()
    if hasattr(v, "item"):
        v = v.item()
        return v.decode() if isinstance(v, bytes) else str(v)
    return str(v)


def skein_label(path, f):
    """'skein mgpcg 64^3 np=2' from the file's resolved config and attributes, else the path."""
    cfg = attr_text(f.attrs.get("config", ""))
    solver = re.search(r"^\s*(?:poisson\.)?solver\s*=\s*(\S+)", cfg, re.M)
    grid = re.search(r"^\s*(?:poisson\.)?grid\s*=\s*([\d, ]+)", cfg, re.M)
    parts = ["skein " + (solver.group(1) if solver else os.path.basename(os.path.dirname(os.path.abspath(path))))]
    if grid:
        dims = [d.strip() for d in grid.group(1).split(",") if d.strip()]
        parts.append(f"{dims[0]}^3" if len(set(dims)) == 1 else "x".join(dims))
    elif "solution" in f:
        parts.append("x".join(str(d) for d in f["solution"].shape))
    if "ranks" in f.attrs:
        parts.append(f"np={attr_text(f.attrs['ranks'])}")
    return " ".join(parts)


def read_text_history(path):
    label, its, res = None, [], []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                if label is None:
                    label = line.lstrip("# ").split(":")[0]
                continue
            k, r = line.split()[:2]
            its.append(int(k))
            res.append(float(r))
    return label or os.path.basename(path), np.array(its), np.array(res)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("h5", nargs="*", help="skein poisson.h5 files")
    ap.add_argument("--history", action="append", default=[], help="text residual history (repeatable)")
    ap.add_argument("--slice", help="h5 file whose /solution is sliced (default: the first h5)")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--title", default=None)
    ap.add_argument("--dpi", type=int, default=120, help="PNG resolution (docs/poisson.png: 80, under 150 kB)")
    args = ap.parse_args()
    if not args.h5 and not args.history:
        ap.error("give at least one poisson.h5 or --history file")

    slice_file = args.slice or (args.h5[0] if args.h5 else None)
    fig, axes = plt.subplots(1, 2 if slice_file else 1, figsize=(13 if slice_file else 7, 5.2), squeeze=False)
    ax = axes[0][0]

    # Lines drawn first are wider, so identical histories (cg and pcg-jacobi: Jacobi is I/6 on a box) stay
    # visible one under the other; markers only on short histories.
    for index, path in enumerate(args.h5):
        with h5py.File(path, "r") as f:
            if "history/residual" not in f:
                print(f"plot_poisson: {path} has no /history/residual; left out of the history plot", file=sys.stderr)
                continue
            r = np.asarray(f["history/residual"][...], dtype=float).ravel()
            label = skein_label(path, f)
        if r.size and r[0] > 0 and abs(r[0] - 1.0) > 1e-12:
            r = r / r[0]
        ax.semilogy(np.arange(r.size), r, marker="o" if r.size <= 60 else None, markersize=3,
                    linewidth=max(1.5, 4.5 - 1.5 * index), label=f"{label} ({r.size - 1} its)")
    for path in args.history:
        label, its, res = read_text_history(path)
        ax.semilogy(its, res, marker=".", markersize=3, linewidth=1.0, linestyle="--",
                    label=f"{label} ({its[-1] if its.size else 0} its)")
    ax.axhline(1e-8, color="grey", linewidth=0.8, linestyle=":")
    ax.text(0.99, 1e-8, "tol 1e-8", transform=ax.get_yaxis_transform(), ha="right", va="bottom", color="grey",
            fontsize=8)
    ax.set_xlabel("iteration k")
    ax.set_ylabel(r"$\|b - A x_k\|_2 \,/\, \|b\|_2$")
    ax.set_title("residual histories")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")

    if slice_file:
        ax2 = axes[0][1]
        with h5py.File(slice_file, "r") as f:
            sol = f["solution"]
            if sol.ndim != 3:
                sys.exit(f"plot_poisson: {slice_file}: /solution has {sol.ndim} dimensions, expected 3")
            nx, ny, nz = sol.shape
            kz = nz // 2
            u = np.asarray(sol[:, :, kz], dtype=float)
            ct = np.asarray(f["cell_type"][:, :, kz]) if "cell_type" in f else None
            label = skein_label(slice_file, f)
        shown = np.ma.masked_where(ct != 0, u) if ct is not None else u
        cmap = matplotlib.colormaps["viridis"].copy()
        cmap.set_bad((0, 0, 0, 0))
        # cell (i, j) covers [i, i+1] x [j, j+1] in cell units; transpose so x runs right and y up
        im = ax2.imshow(shown.T, origin="lower", extent=(0, nx, 0, ny), cmap=cmap, interpolation="nearest")
        fig.colorbar(im, ax=ax2, label="solution")
        if ct is not None and (ct != 0).any():
            # solid cells grey, air cells light blue, under the contours
            fill = np.ma.masked_where(ct == 0, ct.astype(float))
            ax2.imshow(fill.T, origin="lower", extent=(0, nx, 0, ny), interpolation="nearest", vmin=1, vmax=2,
                       cmap=matplotlib.colors.ListedColormap(["darkgrey", "lightskyblue"]))
        if ct is not None:
            xc, yc = np.arange(nx) + 0.5, np.arange(ny) + 0.5
            handles = []
            for value, color, style in ((1, "black", "solid"), (2, "navy", "dashed")):
                mask = (ct == value).astype(float)
                if mask.any() and not mask.all():
                    ax2.contour(xc, yc, mask.T, levels=[0.5], colors=color, linestyles=style, linewidths=1.2)
                if mask.any():
                    handles.append(plt.Line2D([], [], color=color, linestyle=style,
                                              label=f"{CELL_NAMES[value]} ({int(mask.sum())} cells)"))
            if handles:
                ax2.legend(handles=handles, fontsize=8, loc="upper right", framealpha=0.7)
        ax2.set_xlabel("x (cells)")
        ax2.set_ylabel("y (cells)")
        ax2.set_title(f"{label}: /solution[:, :, {kz}] (z = nz/2)")
        ax2.set_aspect("equal")

    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)
    print(f"plot_poisson: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
