"""Fixtures of the radio tests."""

from __future__ import annotations

import pytest
from radio_testdata import observation


@pytest.fixture(scope="session")
def small_vis():
    """20 stations, 6 integrations over 4 hours, 2 channels: 1140 rows."""
    return observation(frequency=(1.0e8, 1.05e8))
