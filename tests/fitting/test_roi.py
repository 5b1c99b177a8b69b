"""The ROI view (issue 10): loss against dollars and the loss a doubling of spend gains, with intervals."""

import json

import pytest

from sweep.cli import main
from sweep.fitting.inputs import drop_highest_loss, fit_inputs_from_file
from sweep.fitting.roi import Pricing, roi_rows
from sweep.fitting.summary import fit_summary

CHINCHILLA = "tests/data/chinchilla_epoch_svg_extracted.csv"


def test_pricing_converts_flops_to_gpu_hours_and_dollars():
    h100 = Pricing(price_per_gpu_hour=2.5, peak_flops=989e12, mfu=0.4)
    per_hour = 989e12 * 0.4 * 3600  # FLOPs one GPU-hour delivers
    assert h100.gpu_hours(per_hour * 10) == pytest.approx(10) and h100.dollars(per_hour * 10) == pytest.approx(25)
    assert h100.flops_for(h100.dollars(3e21)) == pytest.approx(3e21)
    for bad in (dict(price_per_gpu_hour=0, peak_flops=1e12, mfu=0.4), dict(price_per_gpu_hour=1, peak_flops=1e12, mfu=1.5),
                dict(price_per_gpu_hour=1, peak_flops=float("nan"), mfu=0.4)):  # fmt: skip
        with pytest.raises(ValueError):
            Pricing(**bad)


def test_a_doubling_gain_is_the_loss_difference_with_its_own_interval():
    inputs = drop_highest_loss(fit_inputs_from_file(CHINCHILLA), 5)
    summary = fit_summary(inputs, n_boot=100, predict_flops=[1e21, 2e21])
    rows = roi_rows(summary, Pricing(2.5, 989e12, 0.4))
    first, second = rows
    assert first["gain"] == pytest.approx(first["loss"] - second["loss"], rel=1e-9)
    lo, hi = first["gain_ci"]
    assert 0 < lo < first["gain"] < hi
    # the difference of correlated resamples is tighter than the two losses' intervals put together
    assert hi - lo < (first["loss_ci"][1] - first["loss_ci"][0]) + (second["loss_ci"][1] - second["loss_ci"][0])
    assert rows[1]["dollars"] == pytest.approx(2 * rows[0]["dollars"])


def test_predict_shows_what_the_spend_buys(capsys):
    args = ["predict", "--input", CHINCHILLA, "--flops", "1e21", "--bootstrap", "20", "--peak-flops", "989e12", "--price-per-gpu-hour", "2.5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "What the spend buys" in out and "gain per doubling" in out and "1,755" in out  # 702 GPU-hours at $2.5
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["flops"] for row in data["roi"]] == [2.5e20, 5e20, 1e21, 2e21, 4e21]
    assert data["pricing"] == {"price_per_gpu_hour": 2.5, "peak_flops": 989e12, "mfu": 0.4}


@pytest.mark.parametrize("extra, message", [
    (["--price-per-gpu-hour", "2.5"], "--price-per-gpu-hour needs --peak-flops"),
    (["--price-per-gpu-hour", "-1", "--peak-flops", "1e15"], "--price-per-gpu-hour: price_per_gpu_hour must be a positive number"),
    (["--price-per-gpu-hour", "1", "--peak-flops", "1e15", "--mfu", "2"], "--mfu: mfu must be at most 1"),
    (["--flops", "-1"], "--flops: the budget must be a positive number"),
])  # fmt: skip
def test_bad_prices_are_one_line_exit_2(extra, message, capsys):
    flops = [] if "--flops" in extra else ["--flops", "1e21"]
    assert main(["predict", "--input", CHINCHILLA, *flops, "--bootstrap", "0", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sweep: error: {message}") and err.count("\n") == 1
