"""Weight-only quantization schemes of :class:`~wwwserve_p2p.executors.hf.HFExecutor`.

The ``quantize`` option of an ``hf`` executor (``[executor] quantize = "..."``) names one of:

- ``"none"``: the weights as stored;
- ``"int8"``: real int8 storage, one scale per output channel (``hf.quantize_int8_``);
- ``"fp8"``: float8 e4m3 weights with one float32 scale per output channel (weight-only fp8,
  the ``Float8WeightOnlyConfig`` numerics of torchao);
- ``"int<b>-g<N>"``, e.g. ``"int4-g128"``, ``"int4-g32"``: symmetric ``b``-bit integers
  (``2 <= b <= 8``) with one scale per group of ``N`` consecutive input features (``N >= 2``),
  round to nearest (RTN; torchao's ``IntxWeightOnlyConfig(weight_dtype=torch.int4,
  granularity=PerGroup(N))`` numerics).

``fp8`` and ``int<b>-g<N>`` are *fake* quantization: each weight is quantized and dequantized
once at load time and the model keeps computing in float32 with the dequantized weights. The
outputs are those of a weight-only quantized model (what output quality depends on); memory
and speed are those of the float model (no packed int4 / fp8 kernels on this CPU).

Formulas (``w``: one row of a weight ``[out_features, in_features]``, cut into groups of ``N``
along ``in_features``; the same as torchao 0.18 ``quant_primitives.choose_qparams_affine`` with
``MappingType.SYMMETRIC`` and ``_choose_scale_float8`` / ``_quantize_affine_float8``):

- int, ``qmin = -2**(b-1)``, ``qmax = 2**(b-1) - 1``, per group ``g``:
  ``scale_g = max(|w_g|) / ((qmax - qmin) / 2)`` (clamped to at least the smallest normal
  float32, so an all-zero group stays zero), ``q = clamp(round(w_g / scale_g), qmin, qmax)``,
  ``w_hat = q * scale_g``; hence ``|w_hat - w| <= scale_g / 2`` elementwise and at most
  ``2**b`` distinct values per group. ``round`` is round-half-to-even (``torch.round``).
- fp8, per row: ``scale = max(|w|) / 448`` (448 = largest float8_e4m3fn), ``w_hat =
  float(float8_e4m3fn(clamp(w / scale, -448, 448))) * scale``: 3 mantissa bits, so a relative
  error of at most 2**-4 for values in e4m3's normal range.

A row whose length is not a multiple of ``N`` (e.g. 192 features with ``N = 128``) ends with
one shorter group of ``in_features % N`` features: the same as zero-padding the row to a
multiple of ``N`` (zeros change no group maximum) and dropping the padding. torchao refuses
such shapes (``group_size`` must divide ``in_features``); :func:`rtn_groupwise` with
``pad=False`` refuses them too, with a :class:`ConfigError`.

What is quantized (as for int8): the weight of every ``torch.nn.Linear`` and transformers
``Conv1D`` (GPT-2's ``c_attn``, ``c_proj``, ``c_fc``) and the LM head; GPT-2's input embedding
``wte`` is tied to the LM head and therefore carries the same quantized matrix. Biases,
LayerNorms, position embeddings and activations stay float32.

Why not torchao itself (0.18.0, checked on this machine's torch 2.13 CPU build): its
``Int4WeightOnlyConfig`` needs the ``mslk`` GPU kernels, its CPU path
(``IntxWeightOnlyConfig``) requires ``group_size`` to divide ``in_features`` (192 % 128 != 0 for
the ``small`` model) and it only sees ``nn.Linear`` (not GPT-2's ``Conv1D``); importing it
takes ~7 s. The formulas above were cross-checked against torchao 0.18.0 on a 256x256 linear
layer (see docs in ``tests/executors/test_quant.py``).

This module imports torch only inside the functions that need it, so :func:`parse_quantize`
is cheap (config validation uses it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

#: The named modes (any ``int<b>-g<N>`` with 2 <= b <= 8, N >= 2 is accepted as well).
QUANTIZE_MODES: tuple[str, ...] = ("none", "int8", "fp8", "int4-g128", "int4-g32")
#: Largest finite float8_e4m3fn value.
FP8_E4M3_MAX = 448.0

_INT_GROUP = re.compile(r"int([2-8])-g([0-9]{1,6})")


@dataclass(frozen=True)
class QuantScheme:
    """A parsed ``quantize`` value.

    ``mode``: the option as given; ``kind``: ``"none"``, ``"int8"`` (per-channel int8 storage),
    ``"fp8"`` or ``"int"`` (group-wise RTN); ``bits``: bits per stored weight (32 for ``none``);
    ``group_size``: features per scale for ``"int"``, else None (per row).
    """

    mode: str
    kind: str
    bits: int
    group_size: int | None = None

    @property
    def fake(self) -> bool:
        """True when weights are quantized and dequantized at load (fp8, int<b>-g<N>)."""
        return self.kind in ("fp8", "int")


def parse_quantize(mode: Any) -> QuantScheme:
    """The :class:`QuantScheme` of a ``quantize`` option value.

    :raises ConfigError: not a string, or not one of ``none``, ``int8``, ``fp8``,
        ``int<b>-g<N>`` (2 <= b <= 8, 2 <= N <= 65536), with the accepted values in the message.
    """
    if isinstance(mode, str):
        if mode == "none":
            return QuantScheme(mode, "none", 32)
        if mode == "int8":
            return QuantScheme(mode, "int8", 8)
        if mode == "fp8":
            return QuantScheme(mode, "fp8", 8)
        m = _INT_GROUP.fullmatch(mode)
        if m and 2 <= int(m.group(2)) <= 65536:
            return QuantScheme(mode, "int", int(m.group(1)), int(m.group(2)))
    raise ConfigError(f"quantize must be one of {', '.join(QUANTIZE_MODES)} or int<bits>-g<group> "
                      f"(bits 2-8, group 2-65536, e.g. int4-g64), got {mode!r}")


def rtn_groupwise(weight: Any, bits: int, group_size: int, *, pad: bool = True) -> tuple[Any, Any]:
    """Symmetric round-to-nearest quantization of ``weight`` in groups along its last dim.

    :param weight: float tensor ``[rows, cols]`` (a linear layer's ``[out, in]``).
    :param bits: 2..8; values are integers in ``[-2**(bits-1), 2**(bits-1) - 1]``.
    :param group_size: consecutive elements of a row sharing one scale (>= 1).
    :param pad: when ``cols % group_size != 0``, the last group of each row is shorter
        (equivalent to zero padding); with ``pad=False`` that raises instead.
    :returns: ``(w_hat, scale)``: float32 ``[rows, cols]`` (the dequantized weight) and float32
        ``[rows, ceil(cols / group_size)]``, with ``|w_hat - weight| <= scale / 2`` per group.
    :raises ConfigError: bad ``bits``/``group_size``, a weight that is not 2-D, or a group size
        that does not divide ``cols`` with ``pad=False``.
    """
    import torch

    if not 2 <= int(bits) <= 8:
        raise ConfigError(f"bits must be in 2..8, got {bits}")
    if int(group_size) < 1:
        raise ConfigError(f"group_size must be >= 1, got {group_size}")
    if weight.dim() != 2:
        raise ConfigError(f"group-wise quantization needs a 2-D weight, got shape {tuple(weight.shape)}")
    rows, cols = (int(d) for d in weight.shape)
    g = int(group_size)
    rem = cols % g
    if rem and not pad:
        raise ConfigError(f"group_size {g} does not divide the input dimension {cols} "
                          f"(pad=True quantizes the last {rem} features as a shorter group)")
    w = weight.detach().to(torch.float32)
    n_groups = -(-cols // g)
    if rem:
        w = torch.nn.functional.pad(w, (0, n_groups * g - cols))
    wg = w.reshape(rows, n_groups, g)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    amax = wg.abs().amax(dim=2)
    scale = torch.clamp(amax / ((qmax - qmin) / 2), min=torch.finfo(torch.float32).smallest_normal)
    q = torch.clamp(torch.round(wg * (1.0 / scale[..., None])), qmin, qmax)  # as torchao
    w_hat = (q * scale[..., None]).reshape(rows, n_groups * g)[:, :cols]
    return w_hat.contiguous(), scale


def fp8_rowwise(weight: Any) -> tuple[Any, Any]:
    """Float8 e4m3 round trip of ``weight`` ``[rows, cols]`` with one scale per row.

    :returns: ``(w_hat, scale)``: float32 ``[rows, cols]`` and float32 ``[rows]``
        (``scale = max|row| / 448``; an all-zero row keeps scale 1 and stays zero).
    :raises ConfigError: a weight that is not 2-D; torch without float8_e4m3fn.
    """
    import torch

    if weight.dim() != 2:
        raise ConfigError(f"fp8 quantization needs a 2-D weight, got shape {tuple(weight.shape)}")
    if not hasattr(torch, "float8_e4m3fn"):
        raise ConfigError("quantize='fp8' needs a torch with float8_e4m3fn (torch >= 2.1)")
    w = weight.detach().to(torch.float32)
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / FP8_E4M3_MAX, torch.ones_like(amax))
    q = torch.clamp(w / scale[:, None], -FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn)
    return q.to(torch.float32) * scale[:, None], scale


def fake_quantize_(model: Any, scheme: QuantScheme | str) -> dict[str, Any]:
    """Replace, in place, every Linear/``Conv1D`` weight of ``model`` by its quantized value.

    ``Conv1D`` weights (``[in, out]``) are transposed so that groups run along the input
    features, as for ``nn.Linear`` (``[out, in]``). A weight shared by several modules (GPT-2's
    LM head and ``wte``) is quantized once. Must be called under ``torch.no_grad()`` or on a
    model without gradients.

    :returns: ``{"modules": layers quantized, "quantized_params": weights quantized,
        "float_params": parameters left as they were, "bits": b, "group_size": N or None,
        "max_abs_error": largest |w_hat - w| over all weights}``.
    :raises ConfigError: a scheme that is not fp8 or int<b>-g<N>.
    """
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    scheme = parse_quantize(scheme) if isinstance(scheme, str) else scheme
    if not scheme.fake:
        raise ConfigError(f"fake_quantize_ handles fp8 and int<b>-g<N>, not {scheme.mode!r}")
    done: set[int] = set()
    modules = n_q = 0
    max_err = 0.0
    for _name, mod in model.named_modules():
        if not isinstance(mod, (nn.Linear, Conv1D)):
            continue
        modules += 1
        param = mod.weight
        if id(param) in done:
            continue
        done.add(id(param))
        w = param.data.t() if isinstance(mod, Conv1D) else param.data
        if scheme.kind == "fp8":
            w_hat, _ = fp8_rowwise(w)
        else:
            w_hat, _ = rtn_groupwise(w, scheme.bits, scheme.group_size or 1)
        max_err = max(max_err, float((w_hat - w.to(w_hat.dtype)).abs().max()))
        w_hat = w_hat.to(param.dtype)
        param.data.copy_(w_hat.t() if isinstance(mod, Conv1D) else w_hat)
        n_q += param.numel()
    total = sum(p.numel() for p in model.parameters())
    return {"modules": modules, "quantized_params": n_q, "float_params": total - n_q,
            "bits": scheme.bits, "group_size": scheme.group_size, "max_abs_error": max_err}
