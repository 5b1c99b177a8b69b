"""The peak-FLOP/s table: each real device name finds its own row (most specific first), unknowns give None."""

import math
import re

import pytest

from sweep.training.hardware import (
    ACCELERATORS,
    accelerator,
    mean_tokens_per_second,
    mfu,
    parse_device,
    peak_flops,
    resolve_precision,
)

# Device names as torch.cuda.get_device_name returns them -> (part, dense bf16, fp32 training peak) in TFLOP/s.
KNOWN = {
    "NVIDIA H100 80GB HBM3": ("H100 SXM5", 989.5, 494.5),
    "NVIDIA H100 PCIe": ("H100 PCIe", 756.5, 378),
    "NVIDIA H100 NVL": ("H100 NVL", 835.5, 417.5),
    "NVIDIA H200": ("H200 SXM", 989.5, 494.5),
    "NVIDIA H200 NVL": ("H200 NVL", 835.5, 417.5),
    "NVIDIA GH200 480GB": ("GH200 (H100/H200 on Grace Hopper)", 989.5, 494.5),
    "NVIDIA A100-SXM4-80GB": ("A100 SXM4", 312, 156),
    "NVIDIA A100-SXM4-40GB": ("A100 SXM4", 312, 156),
    "NVIDIA A100-PCIE-40GB": ("A100 PCIe", 312, 156),
    "NVIDIA A100 80GB PCIe": ("A100 PCIe", 312, 156),
    "NVIDIA A10": ("A10", 125, 62.5),
    "NVIDIA A30": ("A30", 165, 82),
    "NVIDIA A40": ("A40", 149.7, 74.8),
    "NVIDIA L4": ("L4", 121, 60),
    "NVIDIA L40": ("L40", 181.05, 90.5),
    "NVIDIA L40S": ("L40S", 362.05, 183),
    "NVIDIA GeForce RTX 4090": ("GeForce RTX 4090", 165.2, 82.6),
    "NVIDIA GeForce RTX 3090": ("GeForce RTX 3090", 71, 35.6),
    "NVIDIA B200": ("HGX B200", 2250, 1100),
    "NVIDIA GB200": ("GB200 (NVL72)", 2500, 1250),
    "Tesla V100-SXM2-16GB": ("V100 SXM2", None, 15.7),
    "Tesla V100-SXM2-32GB": ("V100 SXM2", None, 15.7),
    "Tesla V100-PCIE-16GB": ("V100 PCIe", None, 14),
    "Tesla V100S-PCIE-32GB": ("V100S PCIe", None, 16.4),
    "Tesla T4": ("T4", None, 8.1),
}
UNKNOWN = ["cpu", "", "NVIDIA H100", "NVIDIA GeForce RTX 4090 D", "NVIDIA GeForce RTX 4090 Laptop GPU", "NVIDIA A10G",
           "NVIDIA H20", "AMD Instinct MI300X", "NVIDIA A100X", "Tesla V100-SXM3-32GB"]  # fmt: skip


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_each_known_name_finds_its_own_row(name):
    part, bf16, fp32 = KNOWN[name]
    assert accelerator(name).part == part
    assert peak_flops(name, "bf16") == (None if bf16 is None else pytest.approx(bf16 * 1e12))
    assert peak_flops(name, "fp32") == pytest.approx(fp32 * 1e12)


def test_the_first_match_is_the_most_specific():
    """Every known name's first matching row is its own (so no row is shadowed by a less specific one above it),
    and names that a looser pattern would catch (A10G by A10, GH200 by H200) do not reach it."""
    for name, (part, _, _) in KNOWN.items():
        matching = [row.part for row in ACCELERATORS if re.search(row.pattern, name)]
        assert matching[0] == part, (name, matching)
    assert re.search(r"\bA10\b", "NVIDIA A100-SXM4-80GB") is None  # word boundaries keep A10 off A100
    assert accelerator("NVIDIA A10G").part.startswith("A10G") and accelerator("NVIDIA GH200 480GB").part.startswith("GH200")


@pytest.mark.parametrize("name", UNKNOWN)
def test_unknown_devices_and_cpus_give_none(name):
    assert peak_flops(name, "bf16") is None and peak_flops(name, "fp32") is None


def test_no_sparsity_figures():
    """Dense peaks only: the H100 SXM datasheet's 1,979 TFLOP/s bf16 is with 2:4 sparsity, the dense half is used."""
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16") == pytest.approx(1979e12 / 2)
    for row in ACCELERATORS:
        for value in (row.bf16, row.fp32, row.fp16):
            assert value is None or 1e12 < value < 3e15


def test_volta_has_fp16_but_no_bf16():
    assert peak_flops("Tesla V100-SXM2-16GB", "bf16") is None
    assert peak_flops("Tesla V100-SXM2-16GB", "fp16") == pytest.approx(125e12)


def test_ddp_device_strings_and_auto_precision():
    assert parse_device("2x NVIDIA H100 80GB HBM3") == (2, "NVIDIA H100 80GB HBM3")
    assert parse_device("cpu") == (1, "cpu") and parse_device("2x cpu") == (2, "cpu")
    assert peak_flops("2x NVIDIA H100 80GB HBM3", "bf16") == pytest.approx(989.5e12)
    assert resolve_precision("auto", "NVIDIA L4") == "bf16" and resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("fp32", "NVIDIA L4") == "fp32"
    assert peak_flops("NVIDIA L4", "auto") == pytest.approx(121e12)
    assert peak_flops("NVIDIA L4", None) is None and peak_flops(None, "bf16") is None
    assert peak_flops("NVIDIA L4", "int8") is None


def test_mfu_divides_by_every_worker():
    assert mfu(100e12, 2, 250e12) == pytest.approx(0.2)
    assert mfu(None, 1, 250e12) is None and mfu(1e12, 1, None) is None


def test_mean_tokens_per_second_weights_by_time():
    """Two intervals of 1,000 tokens at 1,000 and 3,000 tokens/s take 1 s and 1/3 s: 2,000 tokens in 4/3 s."""
    rows = [{"step": 10, "tokens": 1000, "tokens_per_second": 1000.0}, {"step": 20, "tokens": 2000, "tokens_per_second": 3000.0}]
    assert mean_tokens_per_second(rows) == pytest.approx(2000 / (4 / 3))
    assert mean_tokens_per_second(list(reversed(rows))) == pytest.approx(1500.0)
    assert mean_tokens_per_second(rows, skip_first=True) == pytest.approx(3000.0)
    assert mean_tokens_per_second(rows[:1], skip_first=True) == pytest.approx(1000.0)
    assert mean_tokens_per_second([]) is None
    assert mean_tokens_per_second([{"step": 1, "tokens": 5, "tokens_per_second": None}]) is None
    assert math.isfinite(mean_tokens_per_second(rows))
