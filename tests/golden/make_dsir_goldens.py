#!/usr/bin/env python3
"""Make the golden files for skein's `dsir` parity tests by running the real
reference package, PyPI `data-selection` 1.0.3 (p-lambda/dsir).

Usage
-----
    # one-time setup, outside the repo (PyPI needed once):
    python3 -m venv /opt/dsir-ref
    /opt/dsir-ref/bin/pip install data-selection==1.0.3 nltk==3.8.1 numpy==1.26.4

    # from the repo root:
    /opt/dsir-ref/bin/python tests/golden/make_dsir_goldens.py            # all cases
    /opt/dsir-ref/bin/python tests/golden/make_dsir_goldens.py --cases toy
    /opt/dsir-ref/bin/python tests/golden/make_dsir_goldens.py --outdir /tmp/g --allow-any-nltk
    (plain `pip install data-selection==1.0.3` pulls the newest nltk; see "nltk pin" below)

Options: --cases toy,brown   --outdir DIR (default tests/data/dsir)
         --timing-repeats N  (extra timed runs of compute_importance_weights on toy; default 3)
         --allow-any-nltk    (run even if nltk's WordPunct is not stdlib-re; comparison only)

Inputs (all in tests/data/dsir/, see README.md there):
    toy:   raw = toy_pile_data.jsonl, target = toy_target_data_2.jsonl, text field "contents"
    brown: raw = brown_raw.jsonl,     target = brown_target.jsonl,      text field "text"

Reference settings, the same for every case:
    HashedNgramDSIR(raw_datasets=[raw], target_datasets=[target], cache_dir=<tmp>,
                    raw_parse_example_fn=ex[field], target_parse_example_fn=ex[field],
                    num_proc=1, ngrams=2, num_buckets=10000, tokenizer='wordpunct',
                    min_example_length=100)
    .fit_importance_estimator(num_tokens_to_fit='all')
    .compute_importance_weights()
    .resample(out_dir=<tmp>, num_to_sample=20, top_k=True)   # only to cross-check top-k

Outputs (per case, in --outdir):
    golden_<case>.tsv       line 1: "# key=value ..." settings; then one row per raw
                            document in file order: index<TAB>length<TAB>log_weight
                            (index 0-based over ALL lines of the raw file, length = the
                            package's per-example length metadata = number of wordpunct
                            tokens, log_weight = '%.17g').
    golden_<case>_topk.txt  line 1: "# key=value ..."; then the k=20 indices chosen by the
                            deterministic top-k (top_k=True; only docs with length >= 100
                            are eligible), one per line, sorted by descending log weight.
    golden_toy_model.tsv    (toy only) line 1: "# key=value ..."; then one row per bucket:
                            bucket<TAB>target_prob<TAB>raw_prob<TAB>log_diff<TAB>
                            target_count<TAB>raw_count  (floats '%.17g').

nltk pin: data-selection 1.0.3 only requires nltk>=3.8.1. nltk 3.8.1 ... 3.10.2 tokenize with
the stdlib `re` module (\\w = str.isalnum() or '_', \\s = str.isspace()); nltk >= 3.10.3
routes every pattern through `nltk.redos`, i.e. the third-party `regex` engine with a 5 s
timeout, whose \\w includes combining marks but not No digits such as U+00B9 and whose \\s
excludes U+001C..U+001F. That changes the toy goldens (4 toy documents tokenize differently
because of U+00B9, which shifts the raw distribution: 893 of 1000 log weights move by more
than 1e-6 relative). The goldens are made with nltk 3.8.1 (current when 1.0.3 was released),
whose semantics skein's exact-parity tokenizer implements; the script probes the installed
tokenizer and refuses to write goldens if it does not behave like stdlib re.

Besides the reference run, this script re-derives every log weight with an independent
pure-Python implementation (stdlib re + hashlib + exact math.fsum over the sparse n-gram
counts) and checks the two agree, so the goldens do not hide a quirk of the numpy dot.
The package writes into its cache_dir (log_importance_weights/0.npy,
perexample_metadata/0.npy) and resample() moves/creates its out_dir; both live in a
temporary directory that is deleted afterwards.
"""
import argparse
import collections
import hashlib
import json
import math
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
import unicodedata
from importlib.metadata import version as pkg_version
from pathlib import Path

import numpy as np
import nltk
from data_selection import HashedNgramDSIR

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / 'tests' / 'data' / 'dsir'

SETTINGS = dict(num_proc=1, ngrams=2, num_buckets=10000, tokenizer='wordpunct',
                min_example_length=100)
NUM_TOKENS_TO_FIT = 'all'
K = 20

CASES = {
    'toy': dict(raw='toy_pile_data.jsonl', target='toy_target_data_2.jsonl',
                field='contents', model=True),
    'brown': dict(raw='brown_raw.jsonl', target='brown_target.jsonl',
                  field='text', model=False),
}

# Documented values (references/dsir.md section 2.3) for the toy case.
TOY_DOC = dict(logw=[-2241.013346, -1395.362204, 949.554434, -2248.586821, -2110.905887],
               length=[155, 93, 157, 165, 162], n_eligible=793,
               topk_prefix=[2, 754, 798, 662, 878])

# Independent tokenizer: NLTK WordPunctTokenizer's pattern and flags, stdlib re.
WORDPUNCT = re.compile(r'\w+|[^\w\s]+', re.UNICODE | re.MULTILINE | re.DOTALL)


# Strings on which stdlib-re WordPunct and regex-engine WordPunct disagree.
PROBE = 'a\x1cb \u00b9 \u0939\u093f x_y'
PROBE_RE = ['a', 'b', '\u00b9', '\u0939', '\u093f', 'x_y']


def g17(x):
    return '%.17g' % float(x)


def bucket(s, nb):
    return int(hashlib.sha256(s.encode('utf-8')).hexdigest(), 16) % nb


def sparse_counts(text, n, nb, cache, tokenize=WORDPUNCT.findall):
    words = tokenize(text.lower())
    c = collections.Counter()
    grams = list(words)
    for i in range(2, n + 1):
        grams += [' '.join(words[j:j + i]) for j in range(len(words) - i + 1)]
    for g in grams:
        b = cache.get(g)
        if b is None:
            b = cache[g] = bucket(g, nb)
        c[b] += 1
    return words, c


def read_lines(path):
    # exactly how the package iterates a file: text mode, locale encoding (UTF-8 here)
    with open(path, 'r') as f:
        return [line for line in f if len(line) > 0]


def header(fields):
    return '# ' + ' '.join(f'{k}={v}' for k, v in fields.items()) + '\n'


def run_case(name, spec, outdir, timing_repeats, log, tokenize):
    raw_path = DATA / spec['raw']
    tgt_path = DATA / spec['target']
    field = spec['field']
    nb, n, min_len = SETTINGS['num_buckets'], SETTINGS['ngrams'], SETTINGS['min_example_length']

    def parse(ex):
        return ex[field]

    raw_lines = read_lines(raw_path)
    tgt_lines = read_lines(tgt_path)
    tmp = Path(tempfile.mkdtemp(prefix=f'dsir_golden_{name}_'))
    try:
        cache_dir = tmp / 'cache'

        def make():
            return HashedNgramDSIR(raw_datasets=[str(raw_path)], target_datasets=[str(tgt_path)],
                                   cache_dir=str(cache_dir), raw_parse_example_fn=parse,
                                   target_parse_example_fn=parse, **SETTINGS)

        dsir = make()
        dsir.fit_importance_estimator(num_tokens_to_fit=NUM_TOKENS_TO_FIT)
        t0 = time.perf_counter()
        dsir.compute_importance_weights()
        times = [time.perf_counter() - t0]
        for _ in range(timing_repeats if name == 'toy' else 0):
            t0 = time.perf_counter()
            dsir.compute_importance_weights()
            times.append(time.perf_counter() - t0)

        logw = np.load(str(cache_dir / 'log_importance_weights' / '0.npy'))
        length = np.load(str(cache_dir / 'perexample_metadata' / '0.npy'))
        assert logw.shape == (len(raw_lines),), (logw.shape, len(raw_lines))
        assert length.shape == (len(raw_lines),)
        assert logw.dtype == np.float64 and length.dtype == np.float64

        # ---- independent re-derivation -------------------------------------------------
        hcache = {}
        raw_counts = np.zeros(nb, dtype=np.int64)
        per_doc = []
        for line in raw_lines:
            words, c = sparse_counts(json.loads(line)[field], n, nb, hcache, tokenize)
            per_doc.append((len(words), c))
            for b, v in c.items():
                raw_counts[b] += v
        tgt_counts = np.zeros(nb, dtype=np.int64)
        for line in tgt_lines:
            _, c = sparse_counts(json.loads(line)[field], n, nb, hcache, tokenize)
            for b, v in c.items():
                tgt_counts[b] += v
        assert np.array_equal(raw_counts / raw_counts.sum(), dsir.raw_probs), 'raw probs differ'
        assert np.array_equal(tgt_counts / tgt_counts.sum(), dsir.target_probs), 'target probs differ'
        log_diff = np.log(dsir.target_probs + 1e-8) - np.log(dsir.raw_probs + 1e-8)
        assert np.array_equal(log_diff, dsir.log_diff)
        max_rel = 0.0
        max_abs = 0.0
        for i, (ntok, c) in enumerate(per_doc):
            exact = math.fsum(float(dsir.log_diff[b]) * v for b, v in c.items())
            assert int(length[i]) == length[i] == ntok, (i, length[i], ntok)
            d = abs(exact - logw[i])
            max_abs = max(max_abs, d)
            if exact != 0.0:
                max_rel = max(max_rel, d / abs(exact))
        assert max_rel < 1e-12, max_rel

        # ---- top-k ---------------------------------------------------------------------
        mask = length >= min_len
        eligible = np.where(mask)[0]
        keys = logw[mask]
        chosen = eligible[np.argpartition(-keys, K)[:K]]          # the package's own logic
        order = sorted(eligible.tolist(), key=lambda i: (-logw[i], i))
        topk = order[:K]
        assert set(topk) == set(chosen.tolist()), 'argpartition and full sort disagree'
        kth, nxt = logw[order[K - 1]], logw[order[K]]
        gap = kth - nxt
        assert gap > 0, 'tie at the top-k boundary: selection is not unique'
        ties_in_topk = len(set(logw[topk].tolist())) != K

        # cross-check against the package's resample(top_k=True) output
        sel_dir = tmp / 'selected'
        dsir.resample(out_dir=str(sel_dir), num_to_sample=K, top_k=True)
        got = (sel_dir / '0.jsonl').read_text().splitlines(keepends=True)
        want = [raw_lines[i].strip() + '\n' for i in sorted(topk)]
        assert got == want, 'package resample(top_k=True) picked other documents'

        # ---- documented values -----------------------------------------------------------
        if name == 'toy' and tokenize is not WORDPUNCT.findall:
            log(f'[{name}] comparison run: docs 0-4 log w {[round(float(x), 6) for x in logw[:5]]} '
                f'(documented {TOY_DOC["logw"]}), lengths {[int(x) for x in length[:5]]}')
        elif name == 'toy':
            assert [round(float(x), 6) for x in logw[:5]] == TOY_DOC['logw'], logw[:5]
            assert [int(x) for x in length[:5]] == TOY_DOC['length']
            assert int(mask.sum()) == TOY_DOC['n_eligible']
            assert topk[:5] == TOY_DOC['topk_prefix'], topk[:5]

        # ---- write -----------------------------------------------------------------------
        common = collections.OrderedDict(
            case=name, reference='data-selection==%s' % pkg_version('data-selection'),
            estimator='HashedNgramDSIR', nltk=nltk.__version__, numpy=np.__version__,
            python=platform.python_version(), unicodedata=unicodedata.unidata_version,
            raw=spec['raw'], target=spec['target'], text_field=field, lowercase='python_str.lower',
            tokenizer='wordpunct', token_regex=r'\w+|[^\w\s]+', hash='sha256', ngrams=n,
            num_buckets=nb, min_example_length=min_len, num_tokens_to_fit=NUM_TOKENS_TO_FIT,
            num_proc=SETTINGS['num_proc'], target_laplace_smoothing='none',
            log_diff='log(target_prob+1e-8)-log(raw_prob+1e-8)',
            n_docs=len(raw_lines), n_eligible=int(mask.sum()), n_target_docs=len(tgt_lines))

        h = collections.OrderedDict(common)
        h['columns'] = 'index,length,log_weight'
        with open(outdir / f'golden_{name}.tsv', 'w') as f:
            f.write(header(h))
            for i in range(len(raw_lines)):
                f.write(f'{i}\t{int(length[i])}\t{g17(logw[i])}\n')

        h = collections.OrderedDict(common)
        h.update(k=K, top_k='True', order='descending_log_weight', index='0-based_over_all_raw_lines',
                 kth_log_weight=g17(kth), next_log_weight=g17(nxt), boundary_gap=g17(gap))
        with open(outdir / f'golden_{name}_topk.txt', 'w') as f:
            f.write(header(h))
            for i in topk:
                f.write(f'{i}\n')

        if spec['model']:
            h = collections.OrderedDict(common)
            h['columns'] = 'bucket,target_prob,raw_prob,log_diff,target_count,raw_count'
            h['raw_count_sum'] = int(raw_counts.sum())
            h['target_count_sum'] = int(tgt_counts.sum())
            with open(outdir / f'golden_{name}_model.tsv', 'w') as f:
                f.write(header(h))
                for b in range(nb):
                    f.write(f'{b}\t{g17(dsir.target_probs[b])}\t{g17(dsir.raw_probs[b])}\t'
                            f'{g17(dsir.log_diff[b])}\t{tgt_counts[b]}\t{raw_counts[b]}\n')

        raw_bytes = raw_path.stat().st_size
        nz = logw[logw != 0]
        log(f'[{name}] docs={len(raw_lines)} eligible={int(mask.sum())} target_docs={len(tgt_lines)} '
            f'raw_nonzero_buckets={int((raw_counts > 0).sum())} target_nonzero_buckets={int((tgt_counts > 0).sum())}')
        log(f'[{name}] independent fsum check: max |diff|={max_abs:.3g}, max rel={max_rel:.3g}; '
            f'min |log w|={np.abs(nz).min() if len(nz) else float("nan"):.6g}, zeros={int((logw == 0).sum())}')
        log(f'[{name}] top-{K}: {topk}')
        log(f'[{name}] boundary: {K}th={float(kth)!r} next={float(nxt)!r} gap={gap:.6g} (rel {gap / abs(kth):.3g}); '
            f'ties inside top-k: {ties_in_topk}')
        if name == 'toy':
            best, med = min(times), statistics.median(times)
            log(f'[{name}] compute_importance_weights num_proc=1: times={["%.3f" % t for t in times]} s; '
                f'best {best:.3f} s = {raw_bytes / best / 1e6:.3f} MB/s, {len(raw_lines) / best:.0f} docs/s; '
                f'median {med:.3f} s = {raw_bytes / med / 1e6:.3f} MB/s ({raw_bytes} bytes)')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--cases', default=','.join(CASES))
    ap.add_argument('--outdir', default=str(DATA))
    ap.add_argument('--timing-repeats', type=int, default=3)
    ap.add_argument('--allow-any-nltk', action='store_true')
    a = ap.parse_args()
    if pkg_version('data-selection') != '1.0.3':
        sys.exit('need data-selection==1.0.3, found %s' % pkg_version('data-selection'))
    from data_selection.hashed_ngram_dsir import wpt
    tokenize = WORDPUNCT.findall
    if wpt.tokenize(PROBE) != PROBE_RE:
        if not a.allow_any_nltk:
            sys.exit('nltk %s WordPunctTokenizer does not behave like stdlib re (%r); the goldens '
                     'are pinned to nltk 3.8.1: pip install nltk==3.8.1, or pass --allow-any-nltk '
                     'for a comparison run' % (nltk.__version__, wpt.tokenize(PROBE)))
        tokenize = wpt.tokenize   # comparison run: check hashing/sums against its own tokens
        print('WARNING: nltk %s tokenizes differently from stdlib re; output is NOT the golden set'
              % nltk.__version__, flush=True)
    outdir = Path(a.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for name in a.cases.split(','):
        run_case(name, CASES[name], outdir, a.timing_repeats, lambda s: print(s, flush=True),
                 tokenize)


if __name__ == '__main__':
    main()
