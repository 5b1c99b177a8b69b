"""LPT list scheduling: longest first among the runs that fit."""

from sweep.execute.schedule import LptQueue, Resources


def test_longest_fitting_first():
    runs = [("small", 1.0, Resources(1, 0)), ("big", 9.0, Resources(4, 2)), ("mid", 5.0, Resources(1, 1))]
    queue = LptQueue(runs, duration=lambda r: r[1], demand=lambda r: r[2])
    assert queue.pop_fitting(Resources(8, 4))[0] == "big"
    assert queue.pop_fitting(Resources(1, 0))[0] == "small"  # "mid" needs a GPU
    assert queue.pop_fitting(Resources(0, 0)) is None
    assert queue.pop_fitting(Resources(8, 4), eligible=lambda r: r[0] != "mid") is None  # "mid" is held back
    assert [r[0] for r in queue] == ["mid"]
    queue.remove(runs[2])
    assert len(queue) == 0


def test_resources_arithmetic():
    assert (Resources(2, 1) + Resources(1, 1) - Resources(3, 2)) == Resources(0, 0)
    assert Resources(2, 0).fits_in(Resources(2, 0)) and not Resources(2, 1).fits_in(Resources(8, 0))
