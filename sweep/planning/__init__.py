"""Planning: a config becomes runs (shapes, horizons, learning rates, run ids)."""
