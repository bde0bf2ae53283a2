"""executors/quant.py: group-wise RTN int, fp8 round trip, the ``quantize`` option end to end.

The formulas are torchao 0.18.0's (symmetric ``choose_qparams_affine`` + ``quantize_affine``,
``_choose_scale_float8`` + ``_quantize_affine_float8``). torchao is not a dependency; the
cross-check was run by hand (``pip install --target /tmp/ao torchao==0.18.0``, then
``IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(g))`` and
``Float8WeightOnlyConfig()`` on ``nn.Linear(256, 384)``, ``weight.dequantize()``): bit-identical
for g = 32 and 128, 3 seeds, and for fp8. The tests here check the properties those formulas
guarantee.
"""

from __future__ import annotations

import pytest
import trio

from wwwserve_p2p.config import NodeConfig
from wwwserve_p2p.errors import ConfigError
from wwwserve_p2p.executors import create_executor
from wwwserve_p2p.executors.quant import (FP8_E4M3_MAX, fake_quantize_, fp8_rowwise, parse_quantize,
                                          rtn_groupwise)

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("bits,group", [(4, 32), (4, 128), (8, 32), (2, 16), (3, 7)])
def test_rtn_error_bound_shapes_and_levels(bits, group):
    g = torch.Generator().manual_seed(bits * 1000 + group)
    w = torch.randn(24, 256, generator=g) * torch.logspace(-3, 1, 24)[:, None]  # rows of very different scale
    w_hat, scale = rtn_groupwise(w, bits, group)
    n_groups = -(-256 // group)
    assert w_hat.shape == w.shape and w_hat.dtype == torch.float32
    assert scale.shape == (24, n_groups)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    for j in range(n_groups):
        sl = slice(j * group, min(256, (j + 1) * group))
        s = scale[:, j:j + 1]
        # elementwise error within half a step of its group (up to float32 rounding of w / s,
        # about 2**(bits-1) * 2**-24 steps)
        assert torch.all((w_hat[:, sl] - w[:, sl]).abs() <= s / 2 * (1 + 1e-4))
        q = w_hat[:, sl] / s
        assert torch.allclose(q, q.round(), atol=1e-3)  # integers times the scale ...
        assert q.round().min() >= qmin and q.round().max() <= qmax  # ... in the b-bit range
        assert torch.allclose(s[:, 0], w[:, sl].abs().amax(dim=1) / ((qmax - qmin) / 2))
    # coarser quantization is never more exact on the same tensor
    if bits < 8:
        finer, _ = rtn_groupwise(w, 8, group)
        assert (finer - w).abs().mean() < (w_hat - w).abs().mean()


def test_rtn_group_not_dividing_the_dim():
    w = torch.randn(5, 192, generator=torch.Generator().manual_seed(1))
    w_hat, scale = rtn_groupwise(w, 4, 128)  # groups of 128 and 64 features
    assert w_hat.shape == (5, 192) and scale.shape == (5, 2)
    # the short last group has its own scale: the same as zero-padding the row to 256
    padded, pscale = rtn_groupwise(torch.nn.functional.pad(w, (0, 64)), 4, 128)
    assert torch.equal(padded[:, :192], w_hat) and torch.equal(pscale, scale)
    assert torch.allclose(scale[:, 1], w[:, 128:].abs().amax(dim=1) / 7.5)
    with pytest.raises(ConfigError, match="does not divide the input dimension 192"):
        rtn_groupwise(w, 4, 128, pad=False)
    # a group larger than the row: one scale per row
    _, s = rtn_groupwise(w, 4, 1000)
    assert s.shape == (5, 1)


def test_rtn_edge_cases():
    z = torch.zeros(3, 64)
    z_hat, _ = rtn_groupwise(z, 4, 32)
    assert torch.equal(z_hat, z)  # an all-zero group stays zero (no division by zero)
    with pytest.raises(ConfigError, match="bits"):
        rtn_groupwise(z, 9, 32)
    with pytest.raises(ConfigError, match="group_size"):
        rtn_groupwise(z, 4, 0)
    with pytest.raises(ConfigError, match="2-D"):
        rtn_groupwise(torch.zeros(4), 4, 2)


def test_fp8_round_trip():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(16, 96, generator=g) * 0.02
    w[0] = 0.0
    w_hat, scale = fp8_rowwise(w)
    assert w_hat.shape == w.shape and scale.shape == (16,)
    assert torch.equal(w_hat[0], w[0])
    assert torch.allclose(scale[1:], w[1:].abs().amax(dim=1) / FP8_E4M3_MAX)
    # e4m3: 3 mantissa bits -> relative error <= 2**-4 in the normal range (|x / scale| >= 2**-6)
    x = w[1:] / scale[1:, None]
    normal = x.abs() >= 2 ** -6
    rel = ((w_hat[1:] - w[1:]).abs() / w[1:].abs())[normal]
    assert rel.max() <= 2 ** -4 + 1e-6
    assert int((w_hat[1:] / scale[1:, None]).abs().max().round()) == 448  # the row maximum maps to 448
    # at most 2**8 distinct values per row
    assert max(len(torch.unique(r)) for r in w_hat) <= 256


def test_parse_quantize_and_config():
    assert parse_quantize("int4-g128").group_size == 128 and parse_quantize("int4-g32").bits == 4
    assert parse_quantize("fp8").fake and parse_quantize("int3-g64").fake
    assert not parse_quantize("int8").fake and not parse_quantize("none").fake
    for bad in ("int4", "int4-g1", "int9-g32", "int4-g32x", "fp4", "", 4, None):
        with pytest.raises(ConfigError, match="quantize must be one of"):
            parse_quantize(bad)
    cfg = NodeConfig.from_dict({"executor": {"kind": "hf", "model_dir": "/x", "quantize": "int4-g32"}})
    assert cfg.executor["quantize"] == "int4-g32"
    with pytest.raises(ConfigError, match=r"\[executor\] quantize must be one of .*int4-g128"):
        NodeConfig.from_dict({"executor": {"kind": "hf", "model_dir": "/x", "quantize": "int5"}})


@pytest.fixture(scope="module")
def variants(tiny_model_dir):
    return {q: create_executor("hf", {"model_dir": str(tiny_model_dir), "quantize": q})
            for q in ("none", "fp8", "int4-g32", "int2-g32")}


def test_fake_quantized_executors(variants, tiny_model_dir):
    from transformers.pytorch_utils import Conv1D

    full = variants["none"]
    for q in ("fp8", "int4-g32", "int2-g32"):
        ex = variants[q]
        # advertised: default model id and kind name the scheme
        assert ex.models() == (f"{tiny_model_dir.name}-{q}",) and ex.kind == f"hf-{q}"
        info = ex.quantization
        assert info["mode"] == q and info["modules"] == 4 * 2 + 1  # 2 blocks x (c_attn, c_proj, c_fc, mlp c_proj) + head
        # the tied LM head / wte matrix is quantized once and still tied
        assert ex._model.lm_head.weight is ex._model.transformer.wte.weight
        n = sum(m.weight.numel() for m in ex._model.modules() if isinstance(m, Conv1D))
        assert info["quantized_params"] == n + ex._model.lm_head.weight.numel()
        assert info["float_params"] > 0  # biases, LayerNorms, position embeddings
        # weights changed, position embeddings did not
        assert not torch.equal(ex._model.lm_head.weight, full._model.lm_head.weight)
        assert torch.equal(ex._model.transformer.wpe.weight, full._model.transformer.wpe.weight)
    c = variants["int4-g32"]._model.transformer.h[0].attn.c_attn.weight.t()  # [out, in]
    assert max(len(torch.unique(grp)) for grp in c.reshape(-1, 32)) <= 16  # 4 bits per group
    assert variants["none"].kind == "hf" and variants["none"].models() == (tiny_model_dir.name,)
    with pytest.raises(ConfigError, match="fake_quantize_ handles"):
        fake_quantize_(full._model, "int8")


async def test_quantized_executor_generates_and_scores(variants):
    from wwwserve_p2p.core.types import GenerationRequest

    ex = variants["int4-g32"]
    name = ex.models()[0]
    with trio.fail_after(120):
        text = []
        async for c in ex.generate(GenerationRequest(request_id="q1", model=name, prompt="ROMEO:\n",
                                                     max_tokens=8, temperature=0.0)):
            text.append(c.text)
            last = c
        assert last.finish_reason in ("stop", "length") and last.usage.completion_tokens >= 1
        mean, n = await ex.score("ROMEO:\n", "I will not be")
        assert n > 0 and mean < 0
