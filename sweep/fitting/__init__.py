"""Scaling-law fitters (pure functions returning frozen results) and the table they take."""

from sweep.fitting.inputs import FitInputs, fit_inputs_from_results
from sweep.fitting.isoflop import Approach2Result, IsoFlopFit, PowerLaw, fit_approach2, fit_power_law

__all__ = ["Approach2Result", "FitInputs", "IsoFlopFit", "PowerLaw", "fit_approach2", "fit_inputs_from_results", "fit_power_law"]
