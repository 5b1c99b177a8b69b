"""Shared fixtures: one embedded Ray instance per test session, tiny sweep configs, isolated caches."""

from __future__ import annotations

import os

import pytest

# The embedded test cluster listens on loopback only; token authentication adds nothing there but a warning.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def ray_session():
    """One Ray instance for every test that needs it (starting Ray costs seconds)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=True, logging_level="ERROR")  # Ray Train queries the state API
    yield ray
    ray.shutdown()


def tiny_config(name: str = "tiny", **overrides) -> dict:
    """A sweep of two tiny models at two small budgets: seconds per run on one CPU."""
    config = {
        "name": name,
        "budgets": [2e9, 4e9],
        "model": {"sizes": [3e3, 8e3], "seq_len": 32, "head_dim": 8, "aspect_ratio": 16},
        "training": {"batch_tokens": 256, "eval_points": 2, "eval_tokens": 2048, "min_steps": 5, "log_every_steps": 5},
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            config[key] = {**config.get(key, {}), **value}
        else:
            config[key] = value
    return config
