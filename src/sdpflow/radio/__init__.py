"""Radio interferometry kernels: plain functions on numpy arrays, file I/O kept apart. No Dask here.

Modules, one thing each (conventions of sky, pixels and signs in :mod:`.datamodels`):

* :mod:`.datamodels` — Visibility, Image, GainTable, SkyModel, ArrayConfiguration; Stokes I.
* :mod:`.ms` — MeasurementSet metadata, chunked reads (rows × channels), writes, column chunks.
* :mod:`.hdf5`, :mod:`.fits` — HDF5 visibilities and gain tables; FITS images as WSClean writes them.
* :mod:`.layouts`, :mod:`.simulate`, :mod:`.sky` — arrays, uvw, random skies, gains and noise; DFT.
* :mod:`.weighting`, :mod:`.imaging` — natural/uniform/Briggs weights; ducc0 invert and predict.
* :mod:`.deconvolution`, :mod:`.restore` — Hogbom and multi-scale CLEAN; restoring beam; restore.
* :mod:`.calibration` — T/G/B gain solving (StefCal), applying and inverting gain tables.
"""
