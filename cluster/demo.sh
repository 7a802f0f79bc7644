#!/usr/bin/env bash
# The demo: DSIR on Debian's fortune cookies, a Poisson solve, DCDM trained and solved on a small grid, the Hessian
# spectrum of a small network, and PLS between planted genotypes and features. Target = half of one category; raw = every other fortune
# (including the other half of that category). skein should find that category far above its share.
# Usage: cluster/demo.sh [path/to/skein]   (run by `cluster/quickstart.sh demo`)
set -euo pipefail
cd "$(dirname "$0")/.."
skein=${1:-build/bin/skein}
category=${DEMO_CATEGORY:-computers}
work=out/demo
mkdir -p "$work"
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Ctrl-C: give the ranks time to checkpoint before Open MPI kills them (README, "Checkpoints").
export OMPI_MCA_odls_base_sigkill_timeout=${OMPI_MCA_odls_base_sigkill_timeout:-10}

# Fortune files hold entries separated by lines with a single '%'.
python3 - "$category" "$work" <<'PY'
import glob, json, os, sys
category, work = sys.argv[1], sys.argv[2]
files = sorted(f for f in glob.glob('/usr/share/games/fortunes/*')
               if '.' not in os.path.basename(f) and os.path.isfile(f))
with open(f'{work}/raw.jsonl', 'w') as raw, open(f'{work}/target.jsonl', 'w') as target:
    for path in files:
        name = os.path.basename(path)
        with open(path, encoding='utf-8', errors='replace') as f:
            entries = [e.strip() for e in f.read().split('\n%\n') if e.strip()]
        for i, text in enumerate(entries):
            line = json.dumps({'text': text, 'category': name, 'id': f'{name}/{i}'}) + '\n'
            (target if name == category and i % 2 == 0 else raw).write(line)
PY
echo "demo: $(wc -l < "$work/raw.jsonl") raw fortunes, $(wc -l < "$work/target.jsonl") target fortunes from '$category'"

mpirun -np 2 "$skein" run dsir --config examples/dsir-fortunes.ini --out "$work" \
  --dsir.target="$work/target.jsonl" --dsir.raw="$work/raw.jsonl"
"$skein" inspect "$work/dsir.h5"

python3 - "$category" "$work" <<'PY'
import json, sys
category, work = sys.argv[1], sys.argv[2]
def share(path):
    cats = [json.loads(l)['category'] for l in open(path)]
    return sum(c == category for c in cats) / len(cats), len(cats)
selected, n = share(f'{work}/selected.jsonl')
raw, _ = share(f'{work}/raw.jsonl')
print(f"demo: {100*selected:.1f}% of the {n} selected fortunes are from '{category}', against {100*raw:.1f}% "
      f"for a random selection of the raw corpus ({selected/raw:.1f}x)")
PY

# The same selection in stages (README, "Staged runs"): the run above's dsir.h5 is a model; score the raw fortunes
# as two shard tasks, merge them, and get the one run's selection byte for byte.
for shard in 0 1; do
  mpirun -np 1 "$skein" run dsir --config examples/dsir-fortunes.ini --out "$work/staged/task-$shard" \
    --dsir.raw="$work/raw.jsonl" --dsir.piece_size=256k --dsir.stage=score --dsir.model="$work/dsir.h5" \
    --dsir.shard="$shard/2"
done
mpirun -np 2 "$skein" run dsir --config examples/dsir-fortunes.ini --out "$work/staged/merged" \
  --dsir.raw="$work/raw.jsonl" --dsir.piece_size=256k --dsir.stage=merge --dsir.shards="$work/staged/task-*/dsir.h5"
cmp "$work/selected.jsonl" "$work/staged/merged/selected.jsonl"
echo "demo: staged (the model, 2 shard tasks, a merge): the same $(wc -l <"$work/staged/merged/selected.jsonl") selected fortunes, byte for byte"

# poisson: a 32^3 smoke problem (solid walls, an air opening on top, two solid spheres) at 2 ranks.
mpirun -np 2 "$skein" run poisson --config examples/poisson-smoke.ini --poisson.grid=32 --out "$work/poisson"
"$skein" inspect "$work/poisson/poisson.h5"

# dcdm: the DCDM network trained briefly on an 8^3 smoke grid (a few seconds), then the same problem solved by CG and
# by DCDM with that model: the network's directions take fewer iterations than CG's.
mpirun -np 2 "$skein" run dcdm-train --config examples/dcdm-train-smoke.ini --out "$work/dcdm" \
  --dcdm-train.grid=8 --dcdm-train.channels=8 --dcdm-train.ritz_vectors=100 --dcdm-train.train_vectors=100 \
  --dcdm-train.batch_size=2 --dcdm-train.epochs=24 --dcdm-train.lr=1e-3
for solver in cg dcdm; do
  model=(); [[ $solver == dcdm ]] && model=(--poisson.model="$work/dcdm/dcdm-train.h5")
  mpirun -np 2 "$skein" run poisson --config examples/poisson-smoke.ini --poisson.grid=8 --poisson.tol=1e-4 \
    --poisson.solver=$solver "${model[@]}" --out "$work/dcdm/$solver"
done
/usr/bin/python3 - "$work/dcdm" <<'PY'
import sys
import h5py
work = sys.argv[1]
its = {s: int(h5py.File(f"{work}/{s}/poisson.h5")["/"].attrs["iterations"]) for s in ("cg", "dcdm")}
print(f"demo: 8^3 smoke problem to 1e-4: CG {its['cg']} iterations, DCDM with the trained network {its['dcdm']}")
PY

# hessian: a 64-32-10 tanh MLP on scikit-learn's digits (1,797 images) at 2 ranks: top and bottom eigenvalues,
# trace and spectral density of the loss Hessian before and after 3 epochs of Adam; the density plot is drawn.
mkdir -p "$work/hessian"
python3 tools/hessian/make_data.py digits --out "$work/hessian/digits.h5"
python3 tools/hessian/make_model.py --layers 64,32,10 --activation tanh --out "$work/hessian/model.h5"
mpirun -np 2 "$skein" run hessian --config examples/hessian-digits.ini --out "$work/hessian" \
  --hessian.model="$work/hessian/model.h5" --hessian.data="$work/hessian/digits.h5" \
  --hessian.train_epochs=3 --hessian.analyze_at=0,3 --hessian.slq_vectors=5
"$skein" inspect "$work/hessian/hessian.h5"
python3 tools/hessian/plot_density.py "$work/hessian/hessian.h5" --out "$work/hessian/density.png"

# cca: planted PLINK genotypes (4,000 samples x 3,000 SNPs) against 20 features, PLS by GEP-EY at 2 ranks with
# the exact PLS as reference; the correlation captured against samples seen is drawn.
"$skein" run cca-synth --config examples/cca-synth.ini --out "$work/cca"
mpirun -np 2 "$skein" run cca --config examples/cca-genotypes.ini --out "$work/cca" \
  --cca.x="$work/cca/synth" --cca.y="$work/cca/synth_y.h5:/Y"
"$skein" inspect "$work/cca/cca.h5"
python3 tools/cca/plot_history.py "$work/cca/cca.h5" --out "$work/cca/cca.png"
