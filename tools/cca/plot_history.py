#!/usr/bin/env python3
"""Plot what a `skein run cca` learned over time: validation (and training) correlation captured against
samples seen, one curve per run, and the PCC when the run had reference = exact.

    tools/cca/plot_history.py RUN/cca.h5 [RUN2/cca.h5 ...] --out cca.png [--labels a,b]

Reads /history/samples_seen, /history/validation_tcc, /history/train_tcc and, when present,
/history/validation_pcc, /history/train_pcc (with reference = exact the second panel shows the PCC; without
it, the panel shows the total correlation only). Needs python3-h5py and python3-matplotlib (apt).
"""

import argparse
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="cca.h5 files written by skein run cca (solver = ey)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--labels", help="comma-separated curve labels (default: method and path)")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args()
    try:
        import h5py
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        # A pyenv or conda `python3` first on PATH may lack Debian's packages that /usr/bin/python3 has.
        debian = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(debian) and os.access(debian, os.X_OK) \
                and not os.environ.get("SKEIN_PLOT_REEXEC"):
            os.environ["SKEIN_PLOT_REEXEC"] = "1"
            os.execv(debian, [debian, os.path.abspath(__file__)] + sys.argv[1:])
        sys.exit(f"plot_history.py: {e}; install python3-h5py and python3-matplotlib")
    labels = args.labels.split(",") if args.labels else [None] * len(args.files)
    if len(labels) != len(args.files):
        sys.exit("plot_history.py: --labels needs one label per file")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    any_pcc = False
    for path, label in zip(args.files, labels):
        with h5py.File(path, "r") as f:
            if "history/samples_seen" not in f:
                sys.exit(f"plot_history.py: {path} has no /history (an exact run has none: use solver = ey)")
            seen = f["history/samples_seen"][...]
            name = label or f"{f.attrs['method']} k={f.attrs['k']} ({path})"
            line, = left.plot(seen, f["history/validation_tcc"][...], label=f"{name}: validation")
            left.plot(seen, f["history/train_tcc"][...], linestyle="--", color=line.get_color(),
                      label=f"{name}: training")
            if "history/validation_pcc" in f:
                any_pcc = True
                right.plot(seen, f["history/validation_pcc"][...], color=line.get_color(), label=f"{name}: validation")
                right.plot(seen, f["history/train_pcc"][...], linestyle="--", color=line.get_color(),
                           label=f"{name}: training")
    left.set_xlabel("samples seen")
    left.set_ylabel("total canonical correlation captured (TCC)")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.set_xlabel("samples seen")
    right.set_ylabel("PCC (captured / exact)")
    right.grid(alpha=0.3)
    if any_pcc:
        for level in (0.9, 0.95):
            right.axhline(level, color="grey", linewidth=0.8, linestyle=":")
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "no PCC: run with cca.reference = exact", ha="center", va="center",
                   transform=right.transAxes)
    fig.suptitle("skein cca: correlation captured against samples seen")
    fig.tight_layout()
    fig.savefig(args.out, dpi=args.dpi)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
