"""The pinned mode's matrix products (mlsp_pipelines.gemm): right, thread-count free, and in force."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mlsp_pipelines import determinism, gemm


@pytest.fixture
def routed():
    """The OpenBLAS route installed for the test (as every pinned run has it), 2 threads after."""
    was = gemm.installed()
    if not was:
        gemm.install()
    yield
    torch.set_num_threads(determinism.PINNED_THREADS)
    if not was:
        gemm.uninstall()


def _products(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(1537, 700, generator=g), torch.randn(700, 513, generator=g)
    c, d = torch.randn(7, 300, 64, generator=g), torch.randn(7, 64, 300, generator=g)
    bias = torch.randn(513, generator=g)
    return [
        a @ b,
        a.t().contiguous().t() @ b,  # column-major operand (autograd's transposed views)
        torch.addmm(bias, a, b),
        torch.addmm(bias, a, b, beta=0.5, alpha=2.0),
        torch.bmm(c, d),
        torch.baddbmm(torch.ones(1, 1, 300), c, d, alpha=0.5),
        torch.nn.functional.linear(a[:, :513], b.t()[:, :513], bias[:1].expand(513)),
    ]


def test_products_agree_with_torch_and_differ_only_in_rounding(routed):
    routed_out = _products(0)
    gemm.uninstall()
    try:
        reference = _products(0)
    finally:
        gemm.install()
    for ours, theirs in zip(routed_out, reference):
        assert ours.shape == theirs.shape and ours.dtype == torch.float32
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=2e-3)


def test_results_do_not_depend_on_the_thread_count(routed):
    outs = {}
    for threads in (1, 2, 3, 5):
        torch.set_num_threads(threads)
        outs[threads] = _products(1)
    for threads in (2, 3, 5):
        for one, many in zip(outs[1], outs[threads]):
            assert torch.equal(one, many), f"{threads} threads changed the bits"


def test_row_blocks_are_aligned_and_cover_every_row():
    for m in (1, 47, 48, 96, 97, 1000, 1537, 9542):
        for workers in (1, 2, 3, 8):
            blocks = gemm.row_blocks(m, workers)
            assert blocks[0][0] == 0 and blocks[-1][1] == m
            assert all(e == s2 for (_, e), (s2, _) in zip(blocks[:-1], blocks[1:]))
            assert all(s % gemm.ROW_ALIGN == 0 for s, _ in blocks)
            assert len(blocks) <= workers


def test_aligned_row_split_gives_the_bits_of_one_openblas_call():
    """What the thread-count independence rests on: OpenBLAS tiles rows from the start of each call."""
    rng = np.random.default_rng(0)
    for m, k, n in [(1024, 256, 1024), (1000, 300, 999), (500, 2000, 256)]:
        a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
        whole = a @ b
        for s in (gemm.ROW_ALIGN, 4 * gemm.ROW_ALIGN):
            assert np.array_equal(np.vstack([a[:s] @ b, a[s:] @ b]), whole), (m, k, n, s)


def test_gradients_flow_through_the_route(routed):
    torch.manual_seed(0)
    layer = torch.nn.Linear(300, 200)
    x = torch.randn(400, 300, requires_grad=True)
    layer(x).square().sum().backward()
    w_grad, x_grad = layer.weight.grad.clone(), x.grad.clone()
    gemm.uninstall()
    try:
        layer.zero_grad()
        x.grad = None
        layer(x).square().sum().backward()
    finally:
        gemm.install()
    torch.testing.assert_close(w_grad, layer.weight.grad, rtol=1e-4, atol=1e-1)
    torch.testing.assert_close(x_grad, x.grad, rtol=1e-4, atol=1e-2)


def test_other_dtypes_and_empty_products_use_torchs_kernels(routed):
    a64 = torch.randn(200, 300, dtype=torch.float64)
    assert (a64 @ a64.t()).dtype == torch.float64
    ints = torch.arange(12).reshape(3, 4)
    assert torch.equal(ints @ ints.t(), torch.tensor([[14, 38, 62], [38, 126, 214], [62, 214, 366]]))
    assert (torch.randn(0, 5) @ torch.randn(5, 3)).shape == (0, 3)
    assert torch.equal(torch.randn(4, 0) @ torch.randn(0, 3), torch.zeros(4, 3))


def test_addmm_with_beta_zero_ignores_a_nan_input(routed):
    a, b = torch.randn(256, 128), torch.randn(128, 256)
    out = torch.addmm(torch.full((256, 256), float("nan")), a, b, beta=0)
    assert torch.isfinite(out).all()


def test_pinned_process_routes_and_the_switch_keeps_torchs():
    code = ("import mlsp_pipelines, torch; from mlsp_pipelines import determinism; "
            "determinism.configure_torch(); print(determinism.status()['gemm'])")  # as every run's start does
    env = {k: v for k, v in os.environ.items() if k not in ("MLSP_FAST_KERNELS", gemm.GEMM_ENV)}
    run = lambda **extra: subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True,
                                         text=True, check=True).stdout.strip()
    assert run() == "openblas"
    assert run(MLSP_GEMM="torch") == "torch"
    assert run(MLSP_FAST_KERNELS="1") == "torch"
    bad = subprocess.run([sys.executable, "-c", code], env={**env, "MLSP_GEMM": "mkl"}, capture_output=True, text=True)
    assert bad.returncode != 0 and "MLSP_GEMM='mkl'" in bad.stderr


def test_shape_errors_are_torchs_own(routed):
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        torch.randn(300, 400) @ torch.randn(500, 60)
    with pytest.raises(RuntimeError, match="batch2"):
        torch.bmm(torch.randn(2, 300, 40), torch.randn(3, 40, 60))
    with pytest.raises(RuntimeError, match="size"):
        torch.addmm(torch.randn(7), torch.randn(300, 400), torch.randn(400, 60))


def test_inference_mode_tensors_take_the_route(routed):
    with torch.inference_mode():
        x, w = torch.randn(500, 300), torch.randn(300, 200)
        assert torch.equal(x @ w, torch.from_numpy(x.numpy() @ w.numpy()))


def test_the_sse4_tiers_openblas_kernels_are_thread_count_free_too():
    """The sse4 tier pins OpenBLAS to its Nehalem kernels: the 48-row split must hold there as well."""
    code = (
        "import mlsp_pipelines, numpy as np, torch; from mlsp_pipelines import determinism\n"
        "determinism.configure_torch()\n"
        "assert determinism.status()['tier'] == 'sse4' and determinism.status()['gemm'] == 'openblas'\n"
        "g = torch.Generator().manual_seed(1)\n"
        "a, b = torch.randn(1000, 300, generator=g), torch.randn(300, 999, generator=g)\n"
        "outs = []\n"
        "for t in (1, 2, 3):\n"
        "    torch.set_num_threads(t); outs.append(a @ b)\n"
        "assert all(torch.equal(o, outs[0]) for o in outs), 'thread count changed the bits'\n"
        "assert np.array_equal(outs[0].numpy(), a.numpy() @ b.numpy()), 'differs from one OpenBLAS call'\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MLSP_FAST_KERNELS", gemm.GEMM_ENV)}
    run = subprocess.run([sys.executable, "-c", code], env={**env, "MLSP_KERNEL_TIER": "sse4"},
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
