"""What every image product's header says besides its WCS and beam, as WSClean's headers do.

WSClean writes the observation keys of the MS (TELESCOP, OBSERVER, OBJECT, DATE-OBS), 21
``WSC*`` keywords of its imaging parameters and results, and its command line as HISTORY.
sdpflow writes the same facts: the observation keys (:func:`sdpflow.radio.fits.observation_cards`,
from the MS metadata read once when the flow is built), its parameters under the ``SDP`` prefix
(below), the ``sdpflow run`` command line that gives the run's configuration as HISTORY, and
its provenance record (``SDPPROV`` and the PROVENANCE extension).

=========  ===================================  ================
keyword    meaning                              WSClean's
=========  ===================================  ================
SDPVERSI   sdpflow version                      WSCVERSI
SDPPIPE    pipeline (continuum, ical)
SDPDATAC   MS column imaged                     WSCDATAC
SDPWEIGH   weighting (natural, uniform, briggs) WSCWEIGH
SDPROBUS   Briggs robustness                    (in WSCWEIGH)
SDPNVIS    visibilities in the MS (row × chan)  WSCNVIS
SDPIMGWG   sum of the imaging weights           WSCIMGWG
SDPEPSIL   gridder accuracy                     (WSCGKRNL)
SDPPRECI   gridder precision
SDPWSTAK   w-term corrected                     (WSCNWLAY)
SDPNITER   CLEAN components allowed             WSCNITER
SDPGAIN    loop gain                            WSCGAIN
SDPMGAIN   major-cycle gain                     WSCMGAIN
SDPTHRES   stopping threshold (Jy/beam)         WSCTHRES
SDPATHRS   automatic threshold (sigma)
SDPMSCAL   multi-scale CLEAN
SDPNMAJ    major cycles allowed (--nmajor)
SDPMAJOR   major cycles run                     WSCMAJOR
SDPMINOR   CLEAN components found               WSCMINOR
SDPSTOP    why the minor cycles stopped
SDPCALIB   self-calibration terms (ICAL)
SDPAPPLY   solutions applied before imaging
=========  ===================================  ================

``SDPMAJOR``, ``SDPMINOR`` and ``SDPSTOP`` are on the products written after the last major
cycle (model, residual, restored and their cubes and WSClean-named files), as WSClean writes
WSCMAJOR and WSCMINOR only on its products after cleaning.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from sdpflow.radio.fits import Card


@dataclass(frozen=True)
class ProductHeader:
    """The header of an image product besides its WCS and beam: keyword cards, HISTORY lines and the
    provenance record (see the module)."""

    cards: tuple[Card, ...]
    history: tuple[str, ...]
    provenance: dict[str, Any] | None = None


def product_header(config, calibrate: bool, metadata, provenance: dict[str, Any], *,
                   weight_sum: float | None = None, cycles: list[dict] | None = None) -> ProductHeader:
    """The header of a product of an imaging run of ``config`` on the MS of ``metadata``.

    weight_sum: the summed imaging weights (beam.json's channel_weights), when known; cycles:
    the major cycles' records (cycles/cycle-NN.json), for a product written after the last one.
    """
    from sdpflow.radio.fits import observation_cards

    observation = observation_cards(telescope=metadata.telescope, observer=metadata.observer,
                                    field=metadata.field_name, start_time_s=metadata.start_time)
    pipeline = "ical" if calibrate else "continuum"
    cards = observation + parameter_cards(config, calibrate, metadata, weight_sum=weight_sum, cycles=cycles)
    return ProductHeader(tuple(cards), (command_line(pipeline, config),), provenance)


def command_line(pipeline: str, config) -> str:
    """The ``sdpflow run`` command that gives ``config`` (its values that differ from the defaults)."""
    from sdpflow.config.base import command_arguments

    return shlex.join(["sdpflow", "run", pipeline, *command_arguments(config)])


def parameter_cards(config, calibrate: bool, metadata, *, weight_sum: float | None = None,
                    cycles: list[dict] | None = None) -> list[Card]:
    """The ``SDP*`` keywords of the module's table, for ``config`` (a continuum or ICAL configuration)."""
    from sdpflow.provenance import sdpflow_version

    imaging, deconvolution = config.imaging, config.deconvolution
    cards: list[Card] = [
        ("SDPVERSI", sdpflow_version(), "sdpflow version"),
        ("SDPPIPE", "ical" if calibrate else "continuum", "sdpflow pipeline"),
        ("SDPDATAC", imaging.data_column, "MS column imaged"),
        ("SDPWEIGH", imaging.weighting, "visibility weighting"),
    ]
    if imaging.weighting == "briggs":
        cards.append(("SDPROBUS", imaging.robust, "Briggs robustness"))
    cards.append(("SDPNVIS", metadata.n_rows * metadata.n_channels, "visibilities in the MS (rows x channels)"))
    if weight_sum is not None:
        cards.append(("SDPIMGWG", float(weight_sum), "sum of the imaging weights"))
    cards += [
        ("SDPEPSIL", imaging.epsilon, "gridder accuracy (relative)"),
        ("SDPPRECI", imaging.precision, "gridder precision"),
        ("SDPWSTAK", imaging.wstacking, "w term corrected"),
        ("SDPNITER", deconvolution.niter, "CLEAN components allowed"),
        ("SDPGAIN", deconvolution.gain, "loop gain"),
        ("SDPMGAIN", deconvolution.mgain, "major-cycle gain"),
        ("SDPTHRES", deconvolution.threshold, "[Jy/beam] stopping threshold"),
    ]
    if deconvolution.auto_threshold is not None:
        cards.append(("SDPATHRS", deconvolution.auto_threshold, "[sigma] automatic stopping threshold"))
    cards += [("SDPMSCAL", deconvolution.multiscale, "multi-scale CLEAN"),
              ("SDPNMAJ", deconvolution.nmajor, "major cycles allowed")]
    if cycles:
        run = [cycle for cycle in cycles if not cycle.get("skipped")]
        cards += [("SDPMAJOR", len(run), "major cycles run"),
                  ("SDPMINOR", int(cycles[-1].get("components_total", 0)), "CLEAN components found")]
        if run:
            cards.append(("SDPSTOP", str(run[-1].get("stop_reason")), "why the last minor cycle stopped"))
    if calibrate:
        cards.append(("SDPCALIB", config.calibration.context, "self-calibration terms, in order"))
    applied = getattr(config, "apply_solutions", None)
    if applied:
        cards.append(("SDPAPPLY", _short(str(applied)), "solutions applied before imaging (H5parm)"))
    return cards


def _short(text: str) -> str:
    """A string value that fits one card (68 characters): its end, where a path names its file."""
    return text if len(text) <= 68 else "..." + text[-65:]
