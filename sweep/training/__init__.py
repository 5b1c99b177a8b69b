"""One run on one or more workers: the loop, data, checkpoints, recording its results."""
