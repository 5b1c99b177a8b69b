"""Scaling-law fitters (pure functions returning frozen results), their inputs, bootstrap and summary."""

from sweep.fitting.bootstrap import BootstrapSamples, bootstrap_isoflop, bootstrap_parametric
from sweep.fitting.envelope import Approach1Result, fit_approach1
from sweep.fitting.inputs import FitInputs, drop_highest_loss, fit_inputs_from_file, fit_inputs_from_results
from sweep.fitting.isoflop import Approach2Result, IsoFlopFit, PowerLaw, fit_approach2, fit_power_law
from sweep.fitting.parametric import ParametricFit, fit_parametric
from sweep.fitting.summary import fit_summary

__all__ = [
    "Approach1Result",
    "Approach2Result",
    "BootstrapSamples",
    "FitInputs",
    "IsoFlopFit",
    "ParametricFit",
    "PowerLaw",
    "bootstrap_isoflop",
    "bootstrap_parametric",
    "drop_highest_loss",
    "fit_approach1",
    "fit_approach2",
    "fit_inputs_from_file",
    "fit_inputs_from_results",
    "fit_parametric",
    "fit_power_law",
    "fit_summary",
]
