"""``--predict MODEL.fits``: a model image's visibilities into the MS's MODEL_DATA (WSClean's -predict mode).

One stage, ``predict``: each chunk is read on its worker, its visibilities are predicted from the model
(Jy/pixel, Stokes I, one plane per group of channels as WSClean's -channels-out makes them) at the model's
own phase centre, rotated back to the MS's, and written to MODEL_DATA one chunk at a time (concurrent
writers would contend for the table lock). Nothing is imaged.

Consent: sdpflow marks the data columns it creates (:func:`sdpflow.radio.ms.written_by_sdpflow`). A
MODEL_DATA made by another tool (WSClean, DP3, CASA) is replaced only with ``--overwrite-model-data``.
"""

from __future__ import annotations

import json

import numpy as np

from sdpflow.config.imaging import ContinuumConfig
from sdpflow.engine.flow import Stage, StageContext
from sdpflow.engine.futures import result
from sdpflow.errors import DataError, InputError
from sdpflow.pipelines.imaging.partition import Chunk, plan_chunks
from sdpflow.provenance import checksum
from sdpflow.radio.ms import MSMetadata, ms_checksum, written_by_sdpflow

MODEL_COLUMN = "MODEL_DATA"


def predict_stages(config: ContinuumConfig, metadata: MSMetadata) -> list[Stage]:
    """The stages of a predict run (checked before anything is written: the model, the column's owner)."""
    model_path = str(config.imaging.predict)
    model, centre, cell_rad = read_model(model_path)
    if MODEL_COLUMN in metadata.data_columns and not written_by_sdpflow(config.ms, MODEL_COLUMN) \
            and not config.imaging.overwrite_model_data:
        raise InputError(f"{config.ms}: its {MODEL_COLUMN} was not written by sdpflow: pass --overwrite-model-data "
                         "to replace it, or predict into a copy of the MS")
    chunks = plan_chunks(metadata.time_rows, metadata.times, metadata.n_channels,
                         time_chunks=config.partition.time_chunks, integration_s=metadata.integration_s)
    settings = {"model": model_path, "model_sha256": checksum(model_path), "epsilon": config.imaging.epsilon,
                "padding": config.imaging.padding, "interval": config.imaging.interval,
                "channel_range": config.imaging.channel_range}
    return [Stage("predict", lambda ctx: _predict_stage(ctx, config, metadata.select(phase_centre=centre), chunks,
                                                        model, cell_rad),
                  outputs=("predict.json",), inputs=(config.ms,), config=settings, retries=0,
                  input_checksum=lambda path: ms_checksum(path, config.imaging.data_column))]


def read_model(path: str) -> tuple[np.ndarray, tuple[float, float], float]:
    """(Stokes I model [plane, y, x] Jy/pixel, its phase centre (RA, Dec) radians, its pixel size radians)."""
    from sdpflow.radio.fits import read_fits_image

    image = read_fits_image(path)
    if image.unit.upper() != "JY/PIXEL":
        raise DataError(f"{path}: its unit is {image.unit or 'not given'}, not JY/PIXEL: give a model image "
                        "(sdpflow's model.fits or WSClean's NAME-model.fits)")
    if "I" not in image.polarisation:
        raise DataError(f"{path}: holds no Stokes I plane (it has {','.join(image.polarisation)})")
    model = image.data[:, image.polarisation.index("I")]
    if not np.isfinite(model).all():
        raise DataError(f"{path}: holds NaN or infinite pixels: a model must be finite everywhere")
    return model, image.phase_centre, image.cell_rad


def predict_chunk(ms_path: str, chunk: Chunk, metadata: MSMetadata, model: np.ndarray, cell_rad: float,
                  epsilon: float, data_column: str, padding: float = 1.0) -> np.ndarray:
    """Model visibilities [row, chan] complex64 (Jy, Stokes I) of one chunk, at the MS's phase centre.

    metadata: the MS's, moved to the model's phase centre (reads rotate uvw to it); model: [plane, y, x].
    """
    from sdpflow.radio.imaging import predict
    from sdpflow.radio.ms import read_visibility
    from sdpflow.radio.phase_shift import rephase
    from sdpflow.radio.weighting import output_channel_index

    vis = read_visibility(ms_path, rows=chunk.rows, channels=chunk.channels, data_column=data_column,
                          allow_all_flagged=True, metadata=metadata)
    channel_index = output_channel_index(chunk.band_channels, model.shape[0])[chunk.channels[0]:chunk.channels[1]]
    model_vis = predict(vis, model, cell_rad=cell_rad, epsilon=epsilon, channel_index=channel_index,
                        precision="double", padding=padding)
    if metadata.ms_phase_centre is not None and metadata.ms_phase_centre != metadata.phase_centre:
        model_vis, _ = rephase(model_vis, vis.uvw, vis.frequency, from_centre=metadata.phase_centre,
                               to_centre=metadata.ms_phase_centre)
    return model_vis.astype(np.complex64)


def write_model_chunk(ms_path: str, chunk: Chunk, model_vis: np.ndarray, channel_offset: int) -> int:
    """Write one chunk's model visibilities to MODEL_DATA (parallel hands, cross hands 0); the samples written."""
    from sdpflow.radio.ms import write_column

    write_column(ms_path, MODEL_COLUMN, model_vis, rows=chunk.rows,
                 channels=(chunk.channels[0] + channel_offset, chunk.channels[1] + channel_offset))
    return int(model_vis.size)


def _predict_stage(ctx: StageContext, config: ContinuumConfig, metadata: MSMetadata, chunks: list[Chunk],
                   model: np.ndarray, cell_rad: float) -> dict:
    from sdpflow.radio.ms import mark_written

    client = ctx.client
    model_future = client.scatter(model, broadcast=True)
    predicted = [client.submit(predict_chunk, config.ms, chunk, metadata, model_future, cell_rad,
                               config.imaging.epsilon, config.imaging.data_column, config.imaging.padding,
                               pure=False) for chunk in chunks]
    written = 0
    for index, (chunk, future) in enumerate(zip(chunks, predicted)):
        ctx.progress(index, len(chunks), f"writing {MODEL_COLUMN}")
        written += result(client.submit(write_model_chunk, config.ms, chunk, future, metadata.channel_offset,
                                        pure=False))
    mark_written(config.ms, MODEL_COLUMN)
    record = {"ms": config.ms, "model": config.imaging.predict, "column": MODEL_COLUMN, "samples": written,
              "rows": [chunks[0].rows[0], chunks[-1].rows[1]],
              "channels": [metadata.channel_offset, metadata.channel_offset + metadata.n_channels],
              "model_flux_jy": float(model.sum())}
    ctx.output("predict.json").write_text(json.dumps(record, indent=1))
    ctx.progress(len(chunks), len(chunks))
    return record
