#!/usr/bin/env python3
"""Tests of the tools/hessian scripts (not of the C++ job): data and model files, the torch round trip, and
the density plot on a synthetic hessian.h5 (root layout and /epoch_E groups).

    python3 tools/hessian/test_tools.py [-v]        # unittest; torch tests are skipped without python3-torch

Needs: python3-numpy, python3-h5py, python3-matplotlib; python3-sklearn and dataset-fashion-mnist for the
digits and Fashion-MNIST cases (skipped when missing); python3-torch for the export tests (skipped).
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import need  # noqa: E402

need("numpy", "h5py")
import h5py  # noqa: E402
import numpy as np  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
HAVE_FASHION = os.path.exists("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")


def run(script, *args, ok=True):
    r = subprocess.run([sys.executable, os.path.join(HERE, script)] + [str(a) for a in args],
                       capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise AssertionError(f"{script} {' '.join(map(str, args))} exited {r.returncode}: {r.stderr}")
    return r


def lanczos_quadrature(A, v, m):
    """Gauss quadrature nodes/weights of the spectral measure of A at start vector v (full reorthogonalisation)."""
    n = A.shape[0]
    Q = np.zeros((n, m))
    alpha, beta = np.zeros(m), np.zeros(m)
    q = v / np.linalg.norm(v)
    for j in range(m):
        Q[:, j] = q
        w = A @ q
        alpha[j] = q @ w
        w -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        w -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        beta[j] = np.linalg.norm(w)
        q = w / beta[j]
    T = np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1)
    theta, S = np.linalg.eigh(T)
    return theta, S[0] ** 2


def write_fake_hessian(path, epochs=None, n=300, seed=0):
    """A hessian.h5 of the job's layout from a random 'bulk + outliers' symmetric matrix."""
    rng = np.random.default_rng(seed)

    def analysis(g, scale):
        G = rng.standard_normal((n, n)) / np.sqrt(n)
        A = scale * 0.05 * (G + G.T)
        U = np.linalg.qr(rng.standard_normal((n, 3)))[0]
        A += U @ np.diag(scale * np.array([5.0, 3.0, 2.0])) @ U.T
        ev = np.linalg.eigvalsh(A)
        nodes, weights = [], []
        for _ in range(2):
            z = rng.choice([-1.0, 1.0], size=n)
            t, w = lanczos_quadrature(A, z, 40)
            nodes.append(t)
            weights.append(w)
        nodes, weights = np.array(nodes), np.array(weights)
        sigma = 0.02 * (nodes.max() - nodes.min())
        grid = np.linspace(nodes.min() - 5 * sigma, nodes.max() + 5 * sigma, 1000)
        d = (grid[:, None] - nodes.ravel()[None, :]) / sigma
        values = (np.exp(-0.5 * d * d) * weights.ravel()).sum(1) / (weights.sum() * sigma * np.sqrt(2 * np.pi))
        g["eigenvalues/top"] = ev[::-1][:5]
        g["eigenvalues/bottom"] = ev[:3]
        g["eigenvalues/top_residuals"] = np.full(5, 1e-9)
        g["eigenvalues/bottom_residuals"] = np.full(3, 1e-9)
        z = rng.choice([-1.0, 1.0], size=(30, n))
        s = np.einsum("ij,jk,ik->i", z, A, z)
        t = g.create_group("trace")
        t.attrs["mean"], t.attrs["stderr"], t.attrs["samples"] = s.mean(), s.std(ddof=1) / np.sqrt(30), 30
        g["density/grid"], g["density/values"] = grid, values
        g["density/nodes"], g["density/weights"] = nodes, weights
        return np.trace(A)

    with h5py.File(path, "w") as f:
        f.attrs["parameters"], f.attrs["samples"], f.attrs["loss"] = n, 1000, "cross_entropy"
        if epochs:
            for i, e in enumerate(epochs):
                analysis(f.create_group(f"epoch_{e}"), 1.0 + i)
        else:
            analysis(f, 1.0)


class DataTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_mixture_prefix_and_layout(self):
        big, small = os.path.join(self.d, "big.h5"), os.path.join(self.d, "small.h5")
        run("make_data.py", "mixture", "--n", 70000, "--dim", 70, "--classes", 4, "--seed", 3, "--out", big)
        run("make_data.py", "mixture", "--n", 1234, "--dim", 70, "--classes", 4, "--seed", 3, "--out", small)
        with h5py.File(big, "r") as a, h5py.File(small, "r") as b:
            self.assertEqual(a["X"].dtype, np.float32)
            self.assertEqual(a["y"].dtype, np.int64)
            self.assertEqual(a["X"].shape, (70000, 70))
            self.assertEqual(int(a.attrs["classes"]), 4)
            self.assertIn("source", a.attrs)
            np.testing.assert_array_equal(a["X"][:1234], b["X"][...])
            np.testing.assert_array_equal(a["y"][:1234], b["y"][...])
            self.assertEqual(set(np.unique(a["y"][...])), {0, 1, 2, 3})

    def test_mixture_regression(self):
        p = os.path.join(self.d, "r.h5")
        run("make_data.py", "mixture", "--n", 500, "--dim", 8, "--targets", 3, "--out", p)
        with h5py.File(p, "r") as f:
            self.assertEqual(f["y"].shape, (500, 3))
            self.assertEqual(f["y"].dtype, np.float32)
            self.assertNotIn("classes", f.attrs)

    def test_bad_arguments(self):
        r = run("make_data.py", "mixture", "--out", os.path.join(self.d, "x.h5"), ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--n", r.stderr)
        r = run("make_data.py", "fashion-mnist", "--dir", self.d, "--out", os.path.join(self.d, "x.h5"), ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not found", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.d, "x.h5")))

    @unittest.skipUnless(HAVE_SKLEARN, "python3-sklearn not installed")
    def test_digits(self):
        p = os.path.join(self.d, "d.h5")
        run("make_data.py", "digits", "--out", p)
        with h5py.File(p, "r") as f:
            self.assertEqual(f["X"].shape, (1797, 64))
            self.assertEqual(f["X"].dtype, np.float32)
            X = f["X"][...]
            self.assertTrue(0.0 <= X.min() and X.max() == 1.0)
            self.assertEqual(int(f.attrs["classes"]), 10)

    @unittest.skipUnless(HAVE_FASHION, "dataset-fashion-mnist not installed")
    def test_fashion(self):
        p = os.path.join(self.d, "f.h5")
        run("make_data.py", "fashion-mnist", "--split", "test", "--n", 100, "--out", p)
        with h5py.File(p, "r") as f:
            self.assertEqual(f["X"].shape, (100, 784))
            self.assertLessEqual(f["X"][...].max(), 1.0)
            self.assertEqual(f["y"].dtype, np.int64)
            self.assertEqual(f["y"][0], 9)  # the first test image is an ankle boot


class ModelTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_layout_and_init(self):
        p = os.path.join(self.d, "m.h5")
        run("make_model.py", "--layers", "50,40,3", "--activation", "softplus", "--loss", "mse", "--out", p)
        with h5py.File(p, "r") as f:
            g = f["model"]
            self.assertEqual(list(g.attrs["layer_sizes"]), [50, 40, 3])
            self.assertEqual(g.attrs["layer_sizes"].dtype, np.int64)
            self.assertEqual(g.attrs["activation"], "softplus")
            self.assertEqual(g.attrs["loss"], "mse")
            self.assertEqual(g["W0"].shape, (40, 50))
            self.assertEqual(g["b1"].shape, (3,))
            self.assertEqual(g["W0"].dtype, np.float32)
            self.assertLessEqual(np.abs(g["W0"][...]).max(), 1 / np.sqrt(50))
            self.assertGreater(np.abs(g["W0"][...]).max(), 0.9 / np.sqrt(50))
            self.assertLessEqual(np.abs(g["b1"][...]).max(), 1 / np.sqrt(40))

    def test_bad_layers(self):
        for layers in ("10", "10,0,2", "a,b"):
            r = run("make_model.py", "--layers", layers, "--out", os.path.join(self.d, "m.h5"), ok=False)
            self.assertEqual(r.returncode, 2, r.stderr)


@unittest.skipUnless(HAVE_TORCH, "python3-torch not installed")
class TorchTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_round_trip_and_parameter_order(self):
        import torch
        import torch.nn as nn
        from export_torch import export_sequential, load_sequential

        torch.manual_seed(0)
        for act in (nn.Tanh, nn.ReLU, nn.GELU, nn.Softplus):
            m = nn.Sequential(nn.Linear(6, 5), act(), nn.Linear(5, 4), act(), nn.Linear(4, 3))
            p = os.path.join(self.d, "m.h5")
            export_sequential(m, p, "cross_entropy")
            m2 = load_sequential(p)
            self.assertEqual(m2.skein_activation, {nn.Tanh: "tanh", nn.ReLU: "relu", nn.GELU: "gelu",
                                                   nn.Softplus: "softplus"}[act])
            x = torch.randn(7, 6)
            with torch.no_grad():
                self.assertTrue(torch.equal(m(x), m2(x)))
            v1 = nn.utils.parameters_to_vector(m.parameters())
            v2 = nn.utils.parameters_to_vector(m2.parameters())
            self.assertTrue(torch.equal(v1, v2))
            # the flat order is W0, b0, W1, ... with W row-major, read straight from the file
            with h5py.File(p, "r") as f:
                flat = np.concatenate([f["model"][f"{k}{i}"][...].ravel() for i in range(3) for k in "Wb"])
            np.testing.assert_array_equal(flat, v1.detach().numpy())

    def test_make_model_loads_in_torch(self):
        import torch
        from export_torch import load_sequential, torch_loss

        p = os.path.join(self.d, "m.h5")
        run("make_model.py", "--layers", "8,6,2", "--dtype", "float64", "--out", p)
        m = load_sequential(p)
        self.assertEqual(next(m.parameters()).dtype, torch.float64)
        self.assertIsInstance(torch_loss(m.skein_loss), torch.nn.CrossEntropyLoss)

    def test_refusals(self):
        import torch.nn as nn
        from export_torch import ExportError, export_sequential

        bad = [nn.Sequential(nn.Conv1d(1, 1, 3), nn.Flatten(), nn.Linear(3, 2)),
               nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)),
               nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh(), nn.Linear(4, 2)),
               nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.LogSoftmax(dim=1)),
               nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))]
        for m in bad:
            with self.assertRaises(ExportError):
                export_sequential(m, os.path.join(self.d, "bad.h5"), "mse")
        self.assertFalse(os.path.exists(os.path.join(self.d, "bad.h5")))

    def test_cli_state_dict(self):
        import torch
        import torch.nn as nn

        m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        pt, out = os.path.join(self.d, "m.pt"), os.path.join(self.d, "m.h5")
        torch.save(m.state_dict(), pt)
        r = run("export_torch.py", pt, "--loss", "mse", "--out", out, ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--activation", r.stderr)
        run("export_torch.py", pt, "--loss", "mse", "--activation", "relu", "--out", out)
        with h5py.File(out, "r") as f:
            np.testing.assert_array_equal(f["model/W1"][...], m[2].weight.detach().numpy())


@unittest.skipUnless(HAVE_MPL, "python3-matplotlib not installed")
class PlotTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_density_integrates_to_one(self):
        p = os.path.join(self.d, "hessian.h5")
        write_fake_hessian(p)
        with h5py.File(p, "r") as f:
            g, v = f["density/grid"][...], f["density/values"][...]
            self.assertAlmostEqual(float(np.sum(v) * (g[1] - g[0])), 1.0, places=3)

    def test_plot_root_and_epochs(self):
        p, q = os.path.join(self.d, "a.h5"), os.path.join(self.d, "b.h5")
        write_fake_hessian(p)
        write_fake_hessian(q, epochs=[0, 1, 5])
        for args in ([p], [q], [q, "--epochs", "0,5"], [p, "--sigma", "0.05"], [p, q], [p, q, "--labels", "a,b"]):
            png = os.path.join(self.d, "out.png")
            r = run("plot_density.py", *args, "--out", png)
            self.assertIn("wrote", r.stdout)
            self.assertGreater(os.path.getsize(png), 1000)
            os.remove(png)
        r = run("plot_density.py", q, "--epochs", "3", "--out", os.path.join(self.d, "x.png"), ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("epoch", r.stderr)


if __name__ == "__main__":
    unittest.main()
