"""Worker-side products: the output channels an image header describes are those the gridder made."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from sdpflow.pipelines.imaging.products import output_frequencies
from sdpflow.radio.weighting import output_channel_index


def test_header_channels_group_as_the_gridder_does():
    """10 channels into 4 outputs: the gridder groups 3, 2, 3, 2 and the header says the same."""
    metadata = SimpleNamespace(n_channels=10, frequency=1e8 + 1e6 * np.arange(10), channel_width=np.full(10, 1e6))
    assert np.bincount(output_channel_index(10, 4)).tolist() == [3, 2, 3, 2]
    centres, widths = output_frequencies(metadata, 4)
    np.testing.assert_allclose(centres, [1.01e8, 1.035e8, 1.06e8, 1.085e8])
    np.testing.assert_allclose(widths, [3e6, 2e6, 3e6, 2e6])
