"""The examples in the kernels' docstrings run, and show what they say (doctest)."""

from __future__ import annotations

import doctest
import importlib

import pytest

#: Modules whose docstrings hold examples: the radio, RM synthesis and tile maths kernels.
MODULES = (
    "sdpflow.radio.imaging", "sdpflow.radio.deconvolution", "sdpflow.radio.calibration", "sdpflow.radio.weighting",
    "sdpflow.polarimetry.rmsynth", "sdpflow.polarimetry.rmtable", "sdpflow.geo.tilemath", "sdpflow.radio.sources",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failed, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert tried > 0, f"{name} has no examples in its docstrings"
    assert failed == 0, f"{failed} of {tried} examples in {name} failed (printed above)"
