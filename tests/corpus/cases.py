"""The bad-input corpus: tables of (command line, hostile input made in a folder, expected exit code).

Every case runs in an empty working folder ``w`` (relative paths in the arguments are inside it);
``setup`` puts the hostile input there first. The test asserts the exit code, one ``error:`` line
on stderr and no traceback, that ``w`` holds nothing new (``allow``: paths a run that started and
then failed may leave), and that the run database holds no new run marked running or completed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

Setup = Callable[[Path, dict], None]


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    code: int = 2
    setup: Setup | None = None
    expect: str = ""  # a piece of the error line
    allow: tuple[str, ...] = ()  # new paths (top-level names in w) a started-then-failed run may leave
    needs: tuple[str, ...] = ()  # session fixtures: "ms", "flow"
    root_skip: bool = False  # a permission case: root reads everything
    db: bool = True  # pass --db of the test's database
    warnings: int = 0  # "warning:" lines allowed before the error; -1: a run that started may log lines too


def cases(command: str, *rows: tuple, **common) -> list[Case]:
    """Rows of (id, args, code[, setup[, expect]]) for one command (its words prefixed to args)."""
    made = []
    for row in rows:
        case_id, args, code, *rest = row
        setup = rest[0] if rest else None
        expect = rest[1] if len(rest) > 1 else ""
        extra = rest[2] if len(rest) > 2 else {}
        made.append(Case(f"{command.replace(' ', '-')}:{case_id}", tuple(command.split()) + tuple(args), code,
                         setup, expect, **{**common, **extra}))
    return made


# -- hostile files ---------------------------------------------------------------------------------

def text(name: str, content: str) -> Setup:
    def make(w: Path, ctx: dict) -> None:
        path = w / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return make


def data(name: str, content: bytes) -> Setup:
    def make(w: Path, ctx: dict) -> None:
        (w / name).write_bytes(content)
    return make


def folder(name: str, *files: str) -> Setup:
    def make(w: Path, ctx: dict) -> None:
        (w / name).mkdir(parents=True)
        for f in files:
            (w / name / f).write_text("someone else's file\n")
    return make


def unreadable(name: str, content: str = "a: 1\n") -> Setup:
    def make(w: Path, ctx: dict) -> None:
        (w / name).write_text(content)
        os.chmod(w / name, 0)
    return make


def both(*setups: Setup) -> Setup:
    def make(w: Path, ctx: dict) -> None:
        for s in setups:
            s(w, ctx)
    return make


def h5parm_for(name: str, antennas: list[str]) -> Setup:
    """An H5parm of unit gains for the antennas named (not the session MS's)."""
    def make(w: Path, ctx: dict) -> None:
        import numpy as np

        from sdpflow.radio.datamodels import GainTable
        from sdpflow.radio.h5parm import write_h5parm

        shape = (1, len(antennas), 1, 1)
        table = GainTable(gain=np.ones(shape, complex), weight=np.ones(shape), time=np.zeros(1), interval=np.ones(1),
                          frequency=np.array([1e8]))
        write_h5parm(w / name, table, antenna_names=antennas, antenna_positions=np.zeros((len(antennas), 3)),
                     phase_centre=(0.0, 0.0))
    return make


BINARY = bytes(range(256)) * 8 + b"\x00\xff\xfe"
# An anchor "bomb", kept small: 6 levels of 6 = 46656 leaves when expanded.
BOMB = "a: &a [x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, n in zip("abcde", "bcdef"))


def sky_image(name: str, side: int) -> Setup:
    """A one-plane SIN image of side × side pixels (a mask of the wrong size for a 64-pixel image)."""
    def make(w: Path, ctx: dict) -> None:
        import numpy as np

        from sdpflow.radio.fits import write_fits_image

        write_fits_image(w / name, np.ones((side, side)), phase_centre=(0.0, -0.5), cell_rad=1e-4, frequency=1e8)
    return make


def plain_fits(name: str, side: int) -> Setup:
    """A FITS image without sky axes."""
    def make(w: Path, ctx: dict) -> None:
        import numpy as np
        from astropy.io import fits

        fits.PrimaryHDU(np.ones((side, side), np.float32)).writeto(w / name)
    return make


def foreign_model_data(ms: Path) -> None:
    """A MODEL_DATA column as another tool leaves it: present, without sdpflow's mark."""
    from casacore.tables import makecoldesc, table

    with table(str(ms), readonly=False, ack=False) as main:
        if "MODEL_DATA" in main.colnames():
            main.removecols(["MODEL_DATA"])
        description = main.getcoldesc("DATA")
        description.pop("keywords", None)
        main.addcols(makecoldesc("MODEL_DATA", description))


def model_fits(name: str) -> Setup:
    """A small model image (Jy/pixel) with one 1 Jy pixel."""
    def make(w: Path, ctx: dict) -> None:
        import numpy as np

        from sdpflow.radio.fits import write_fits_image

        model = np.zeros((64, 64))
        model[32, 32] = 1.0
        write_fits_image(w / name, model, phase_centre=(0.0, -0.5), cell_rad=1e-4, frequency=[1e8], unit="JY/PIXEL")
    return make


def ms_copy(name: str = "obs.ms", damage: Callable[[Path], None] | None = None) -> Setup:
    """A copy of the session's small MS, then ``damage(copy)``."""
    def make(w: Path, ctx: dict) -> None:
        shutil.copytree(ctx["ms"], w / name)
        if damage is not None:
            damage(w / name)
    return make


def remove(sub: str) -> Callable[[Path], None]:
    def damage(ms: Path) -> None:
        target = ms / sub
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return damage


def truncate(sub: str, keep: int = 100) -> Callable[[Path], None]:
    def damage(ms: Path) -> None:
        with open(ms / sub, "r+b") as file:
            file.truncate(keep)
    return damage


def storage_of(column: str) -> Callable[[Path], Path]:
    def find(ms: Path) -> Path:
        from casacore.tables import table

        with table(str(ms), ack=False) as main:
            [seq] = [info["SEQNR"] for info in main.getdminfo().values() if column in info["COLUMNS"]]
        return (sorted(ms.glob(f"table.f{seq}_TSM*")) or [ms / f"table.f{seq}"])[0]
    return find


def random_bytes(column: str) -> Callable[[Path], None]:
    def damage(ms: Path) -> None:
        import numpy as np

        path = storage_of(column)(ms)
        path.write_bytes(np.random.default_rng(3).bytes(path.stat().st_size))
    return damage


def set_column(column: str, value) -> Callable[[Path], None]:
    def damage(ms: Path) -> None:
        from casacore.tables import table

        with table(str(ms), readonly=False, ack=False) as main:
            values = main.getcol(column)
            values[:] = value
            main.putcol(column, values)
    return damage


# -- the tables ------------------------------------------------------------------------------------

DB_BAD = "postgresql://nobody@127.0.0.1:9/none"
FLOW = ("run", "demo-flow", "--out", "out", "--count", "10")
GOOD_FLOW_YAML = "squares:\n  count: 10\n"

GLOBAL = cases(
    "",
    ("db-garbage-scheme", ("--db", "garbage://", "runs", "list"), 2, None, "is not valid"),
    ("db-unreachable-postgres", ("--db", DB_BAD, "runs", "list"), 3),
    ("db-sqlite-is-a-folder", ("--db", "sqlite:///adir", "runs", "list"), 3, folder("adir")),
    ("db-sqlite-binary-file", ("--db", "sqlite:///junk.db", "runs", "list"), 3, data("junk.db", BINARY)),
    ("db-password-in-url-unreachable", ("--db", "postgresql://me:pw@127.0.0.1:9/x", "runs", "list"), 3, None, "",
     {"warnings": 1}),
    ("db-password-file-missing", ("--db", DB_BAD, "--db-password-file", "nope.txt", "runs", "list"), 2),
    # A file others can read also gets a warning line: that is right (the password is exposed).
    ("db-password-file-empty", ("--db", DB_BAD, "--db-password-file", "pw", "runs", "list"), 2, text("pw", ""),
     "is empty", {"warnings": 1}),
    ("db-password-file-binary", ("--db", DB_BAD, "--db-password-file", "pw", "runs", "list"), 2, data("pw", BINARY)),
    ("db-password-file-unreadable", ("--db", DB_BAD, "--db-password-file", "pw", "runs", "list"), 2,
     unreadable("pw"), "", {"root_skip": True}),
    ("cluster-unknown", ("--cluster", "bogus", *FLOW), 2, None, "unknown cluster spec"),
    ("cluster-local-zero", ("--cluster", "local:0", *FLOW), 2),
    ("cluster-local-garbage", ("--cluster", "local:abc", *FLOW), 2),
    ("cluster-local-huge", ("--cluster", "local:99999999999999999999", *FLOW), 2),
    ("cluster-tcp-no-port", ("--cluster", "tcp://", *FLOW), 2),
    # an unreachable scheduler: exit 3 at once, before out/ is made or the run recorded
    ("cluster-unreachable-run", ("--cluster", "tcp://127.0.0.1:9", *FLOW), 3, None, "cannot reach the Dask scheduler"),
    ("cluster-unreachable-resume", ("--cluster", "tcp://127.0.0.1:9", "runs", "resume", "{FLOW}"), 3, None,
     "cannot reach the Dask scheduler", {"needs": ("flow",)}),
    ("unknown-global-option", ("--dbx", "x", "runs", "list"), 2),
)

SIMULATE = cases(
    "simulate",
    ("no-out", ("--preset", "small"), 2, None, "--out"),
    ("stations-negative", ("--out", "out", "--stations", "-5"), 2),
    ("stations-huge", ("--out", "out", "--stations", "99999999999999999999999"), 2),
    ("times-huge", ("--out", "out", "--preset", "small", "--times", "1000000000000"), 2),
    ("beyond-memory", ("--out", "out", "--stations", "2000", "--times", "1000", "--channels", "4"), 2, None,
     "in memory"),
    ("freq-nan", ("--out", "out", "--freq-start", "nan"), 2),
    ("freq-inf", ("--out", "out", "--freq-start", "inf"), 2, None, "freq_start_hz"),
    ("phase-error-nan", ("--out", "out", "--phase-error", "nan"), 2),
    ("preset-unknown", ("--out", "out", "--preset", "bogus"), 2),
    ("out-names-an-ms", ("--out", "obs.ms"), 2, None, "names the output folder"),
    ("out-is-a-file", ("--out", "out"), 2, text("out", "a file\n")),
    ("out-foreign-folder", ("--out", "out"), 2, folder("out", "thesis.tex"), "did not write"),
    ("config-missing", ("--out", "out", "--config", "nope.yaml"), 2, None, "nope.yaml"),
    ("config-binary", ("--out", "out", "--config", "c.yaml"), 2, data("c.yaml", BINARY)),
    ("config-unknown-key", ("--out", "out", "--config", "c.yaml"), 2, text("c.yaml", "stationz: 4\n"), "stationz"),
    ("config-wrong-type", ("--out", "out", "--config", "c.yaml"), 2, text("c.yaml", "stations: many\n"), "stations"),
    ("config-anchor-bomb", ("--out", "out", "--config", "c.yaml"), 2, text("c.yaml", BOMB + "stations: *f\n")),
    ("config-unreadable", ("--out", "out", "--config", "c.yaml"), 2, unreadable("c.yaml"), "", {"root_skip": True}),
    ("set-unknown-key", ("--out", "out", "--set", "nosuch=1"), 2, None, "nosuch"),
    ("layout-missing", ("--out", "out", "--layout", "nope.csv"), 2, None, "nope.csv"),
    ("layout-binary", ("--out", "out", "--layout", "l.csv"), 2, data("l.csv", BINARY), "l.csv"),
    ("layout-nan", ("--out", "out", "--layout", "l.csv"), 2, text("l.csv", "x_m,y_m,z_m\n0,0,0\nnan,1,1\n5,5,5\n"),
     "NaN"),
)

FLOW_CASES = cases(
    "run demo-flow",
    ("count-negative", ("--out", "out", "--count", "-1"), 2),
    ("count-huge", ("--out", "out", "--count", "99999999999999999999999"), 2, None, "squares.count"),
    ("set-nan", ("--out", "out", "--set", "squares.count=nan"), 2),
    ("set-missing-section", ("--out", "out", "--set", "count=5"), 2),
    ("config-wrong-nesting", ("--out", "out", "--config", "c.yaml"), 2, text("c.yaml", "count: 10\n"), "count"),
    ("config-cluster-bogus", ("--out", "out", "--config", "c.yaml"), 2,
     text("c.yaml", GOOD_FLOW_YAML + "cluster:\n  spec: bogus\n")),
    ("until-stage-unknown", ("--out", "out", "--count", "10", "--until-stage", "nosuch"), 2, None, "nosuch"),
    ("out-is-a-file", ("--out", "out", "--count", "10"), 2, text("out", "x\n")),
    ("out-foreign-folder", ("--out", "out", "--count", "10"), 2, folder("out", "notes.txt"), "did not write"),
)

MS_ARGS = ("--size", "64", "64", "--niter", "50", "--nmajor", "2")
ICAL = cases(
    "run ical",
    ("no-ms", ("--out", "out", *MS_ARGS), 2, None, "ms"),
    ("ms-missing", ("--ms", "nope.ms", "--out", "out", *MS_ARGS), 2, None, "nope.ms"),
    ("ms-is-a-file", ("--ms", "obs.ms", "--out", "out", *MS_ARGS), 2, text("obs.ms", "x\n")),
    ("ms-no-spectral-window", ("--ms", "obs.ms", "--out", "out", *MS_ARGS), 2, ms_copy(damage=remove("SPECTRAL_WINDOW"))),
    ("ms-truncated-table-dat", ("--ms", "obs.ms", "--out", "out", *MS_ARGS), 2, ms_copy(damage=truncate("table.dat"))),
    ("ms-truncated-uvw-storage", ("--ms", "obs.ms", "--out", "out", *MS_ARGS), 2,
     ms_copy(damage=lambda ms: truncate(storage_of("UVW")(ms).name, 10)(ms)), "cannot be read"),
    ("out-is-the-ms", ("--ms", "obs.ms", "--out", "obs.ms", *MS_ARGS), 2, ms_copy(), "inside the input"),
    ("out-inside-the-ms", ("--ms", "obs.ms", "--out", "obs.ms/images", *MS_ARGS), 2, ms_copy(), "inside the input"),
    ("out-foreign-folder", ("--ms", "obs.ms", "--out", "out", *MS_ARGS), 2,
     both(ms_copy(), folder("out", "mine.fits")), "did not write"),
    ("size-huge", ("--ms", "obs.ms", "--out", "out", "--size", "99999999", "99999999"), 2, ms_copy()),
    # memory preflight: refused before the cluster starts, naming the option
    ("size-beyond-worker-memory", ("--ms", "obs.ms", "--out", "out", "--size", "100000", "100000"), 2, ms_copy(),
     "--size 100000 100000: a worker needs about"),
    ("worker-memory-limit-tiny", ("--ms", "obs.ms", "--out", "out", *MS_ARGS, "--set", "cluster.memory_limit=100kB"), 2,
     ms_copy(), "--size 64 64: a worker needs about"),
    ("scale-garbage", ("--ms", "obs.ms", "--out", "out", "--scale", "bogus", *MS_ARGS), 2, ms_copy()),
    ("scale-negative", ("--ms", "obs.ms", "--out", "out", "--scale", "-20asec", *MS_ARGS), 2, ms_copy(), "imaging.scale"),
    ("gain-nan", ("--ms", "obs.ms", "--out", "out", "--gain", "nan", *MS_ARGS), 2, ms_copy()),
    ("data-column-missing", ("--ms", "obs.ms", "--out", "out", "--data-column", "NOPE", *MS_ARGS), 2, ms_copy(),
     "NOPE"),
    needs=("ms",),
)
CONTINUUM = cases(
    "run continuum",
    ("ms-unicode-missing", ("--ms", "nöpe☃.ms", "--out", "out", *MS_ARGS), 2),
    ("channels-out-beyond-worker-memory", ("--ms", "obs.ms", "--out", "out", "--size", "8192", "8192",
                                           "--channels-out", "64"), 2, ms_copy(), "(64 planes)"),
    # The run starts (the MS opens) and then fails: the out folder may stay, with no product in it.
    ("all-data-nan", ("--ms", "obs.ms", "--out", "out", *MS_ARGS), 2, ms_copy(damage=set_column("DATA", float("nan"))),
     "NaN or infinite", {"allow": ("out",), "warnings": -1}),
    # full polarisation: the MS has the parallel hands XX, YY only
    ("pol-cross-hands-missing", ("--ms", "obs.ms", "--out", "out", "--pol", "xx,xy,yx,yy", *MS_ARGS), 2, ms_copy(),
     "XY,YX missing"),
    ("pol-circular-on-linear", ("--ms", "obs.ms", "--out", "out", "--pol", "rr,ll", *MS_ARGS), 2, ms_copy(),
     "LL,RR missing"),
    ("pol-stokes-and-correlations", ("--ms", "obs.ms", "--out", "out", "--pol", "i,xx", *MS_ARGS), 2, ms_copy(),
     "do not mix"),
    ("pol-unknown", ("--ms", "obs.ms", "--out", "out", "--pol", "IQUVW", *MS_ARGS), 2, ms_copy(), "pol"),
    ("name-with-a-folder", ("--ms", "obs.ms", "--out", "out", "--name", "../x", *MS_ARGS), 2, ms_copy(), "--out"),
    ("name-would-replace-a-foreign-file", ("--ms", "obs.ms", "--out", "out", "--overwrite", "--name", "ws",
                                           *MS_ARGS), 2, both(ms_copy(), folder("out", "ws-image.fits")),
     "was not written by sdpflow", {"allow": ("out",)}),
    ("fit-spectral-pol-unjoined", ("--ms", "obs.ms", "--out", "out", "--channels-out", "2", "--fit-spectral-pol", "2",
                                   *MS_ARGS), 2, ms_copy(), "--join-channels"),
    ("fit-spectral-pol-too-many-terms", ("--ms", "obs.ms", "--out", "out", "--channels-out", "2", "--join-channels",
                                         "--fit-spectral-pol", "3", *MS_ARGS), 2, ms_copy(), "at least 3 output channels"),
    # --fits-mask: checked against the image grid before anything runs
    ("fits-mask-missing", ("--ms", "obs.ms", "--out", "out", "--fits-mask", "nope.fits", *MS_ARGS), 2, ms_copy(),
     "nope.fits"),
    ("fits-mask-not-fits", ("--ms", "obs.ms", "--out", "out", "--fits-mask", "m.fits", *MS_ARGS), 2,
     both(ms_copy(), text("m.fits", "SIMPLE = T\n")), "m.fits"),
    ("fits-mask-wrong-size", ("--ms", "obs.ms", "--out", "out", "--fits-mask", "m.fits", *MS_ARGS), 2,
     both(ms_copy(), sky_image("m.fits", 32)), "give a mask of the image's --size"),
    ("fits-mask-no-sky-axes", ("--ms", "obs.ms", "--out", "out", "--fits-mask", "m.fits", *MS_ARGS), 2,
     both(ms_copy(), plain_fits("m.fits", 64)), "RA---SIN"),
    # --apply-solutions: a file that is no H5parm, none at all, or one for another array
    ("apply-solutions-not-hdf5", ("--ms", "obs.ms", "--out", "out", "--apply-solutions", "g.h5", *MS_ARGS), 2,
     both(ms_copy(), text("g.h5", "not an H5parm\n")), "not an HDF5 file"),
    ("apply-solutions-missing", ("--ms", "obs.ms", "--out", "out", "--apply-solutions", "none.h5", *MS_ARGS), 2,
     ms_copy(), "no such H5parm"),
    ("apply-solutions-other-antennas", ("--ms", "obs.ms", "--out", "out", "--apply-solutions", "g.h5", *MS_ARGS), 2,
     both(ms_copy(), h5parm_for("g.h5", ["CS001", "CS002"])), "no solutions for antenna"),
    # WSClean's selection, -shift, -predict (more bad values: tests/pipelines/test_selection_options.py)
    ("channel-range-beyond-the-ms", ("--ms", "obs.ms", "--out", "out", "--channel-range", "0", "999", *MS_ARGS), 2,
     ms_copy(), "--channel-range 0 999: obs.ms has"),
    ("field-beyond-the-ms", ("--ms", "obs.ms", "--out", "out", "--field", "3", *MS_ARGS), 2, ms_copy(),
     "--field 3: obs.ms has field 0 only"),
    ("spws-beyond-the-ms", ("--ms", "obs.ms", "--out", "out", "--spws", "0,4", *MS_ARGS), 2, ms_copy(),
     "--spws 0,4: obs.ms has spectral window 0 only"),
    ("shift-malformed", ("--ms", "obs.ms", "--out", "out", "--shift", "5h30x", "-30d", *MS_ARGS), 2, ms_copy(),
     "is not an RA like 05h30m00s"),
    ("predict-over-another-tool-s-model-data", ("--ms", "obs.ms", "--out", "out", "--predict", "model.fits"), 2,
     both(ms_copy(damage=foreign_model_data), model_fits("model.fits")), "pass --overwrite-model-data"),
    needs=("ms",),
)

TILES = cases(
    "run tiles",
    ("no-input", ("--out", "out"), 2),
    ("input-missing", ("--out", "out", "--input", "nope.gpkg"), 2, None, "nope.gpkg"),
    ("input-is-a-folder", ("--out", "out", "--input", "adir"), 2, folder("adir")),
    # An unreadable file is a failed item (others may be fine): with every item failed the run fails, exit 1.
    ("input-garbage-geojson", ("--out", "out", "--input", "a.geojson"), 1, text("a.geojson", "{not json"),
     "cannot be read as a vector file", {"allow": ("out",)}),
    ("input-binary-gpkg", ("--out", "out", "--input", "a.gpkg"), 1, data("a.gpkg", BINARY),
     "cannot be read as a vector file", {"allow": ("out",)}),
    ("z-range-reversed", ("--out", "out", "--input", "a.geojson", "--z-range", "13", "6"), 2,
     text("a.geojson", '{"type": "FeatureCollection", "features": []}')),
    ("tms-unknown", ("--out", "out", "--input", "a.geojson", "--tms-id", "Bogus"), 2,
     text("a.geojson", '{"type": "FeatureCollection", "features": []}')),
    ("max-failed-nan", ("--out", "out", "--input", "a.geojson", "--max-failed-fraction", "nan"), 2,
     text("a.geojson", '{"type": "FeatureCollection", "features": []}')),
)

def together(*setups: Setup) -> Setup:
    def make(w: Path, ctx: dict) -> None:
        for setup in setups:
            setup(w, ctx)
    return make


RACS_HEADER = "Source_ID,Gaussian_ID,RA,Dec,Peak_flux,Total_flux,Maj,Min,PA\n"
RACS_ROW = "s1,s1_g1,10.0,-30.0,5.0,6.0,20.0,15.0,30.0\n"

POLARIMETRY = cases(
    "run polarimetry",
    ("no-catalogue", ("--out", "out", "--images", "adir"), 2, folder("adir"), "no catalogue"),
    ("catalogue-missing", ("--out", "out", "--images", "adir", "--catalogue", "nope.fits"), 2, folder("adir"),
     "nope.fits"),
    ("catalogue-binary", ("--out", "out", "--images", "adir", "--catalogue", "c.fits"), 2, data("c.fits", BINARY),
     "cannot be read"),
    ("catalogue-unknown-format", ("--out", "out", "--images", "adir", "--catalogue", "c.parquet"), 2,
     text("c.parquet", "x"), "unknown format"),
    ("catalogue-columns-missing", ("--out", "out", "--images", "adir", "--catalogue", "c.csv"), 2,
     text("c.csv", "RA,Dec\n1,2\n"), "no column"),
    ("catalogue-dec-nan", ("--out", "out", "--images", "adir", "--catalogue", "c.csv"), 2,
     text("c.csv", RACS_HEADER + "s1,s1_g1,10.0,nan,5,6,20,15,30\n"), "not a finite number"),
    ("images-without-cubes", ("--out", "out", "--images", "adir", "--catalogue", "c.csv"), 2,
     together(text("c.csv", RACS_HEADER + RACS_ROW), folder("adir")), "restored-I.fits"),
    ("one-cube-of-three", ("--out", "out", "--i-cube", "i.fits", "--catalogue", "c.csv"), 2, None, "all three"),
    ("annulus-reversed", ("--out", "out", "--set", "annulus_beams=[5,1.5]"), 2, None, "annulus_beams"),
) + cases(
    "polarimetry init",
    ("catalogue-missing", ("nope.fits", "--out", "out"), 2, None, "nope.fits"),
    ("catalogue-duplicate-ids", ("c.csv", "--out", "out"), 2, text("c.csv", RACS_HEADER + RACS_ROW + RACS_ROW),
     "appears 2 times"),
)

RUN_FLOW = cases(
    "run flow",
    ("module-missing", ("nosuchmodule:thing", "--out", "out"), 2, None, "nosuchmodule"),
    ("not-a-pipeline", ("json:loads", "--out", "out"), 2),
    ("no-colon", ("garbage", "--out", "out"), 2),
    ("path-traversal", ("../../etc/passwd", "--out", "out"), 2),
    # a bug in a user's build(): one line naming the pipeline and where, exit 1, nothing recorded
    ("build-raises", ("badbuild:P", "--out", "out"), 1,
     text("badbuild.py", "from pydantic import BaseModel\nfrom sdpflow.pipelines import Pipeline\n"
          "class C(BaseModel):\n    pass\ndef build(config):\n    raise RuntimeError('my bug')\n"
          "P = Pipeline('bad', C, build)\n"), "RuntimeError: my bug (badbuild.py:6)"),
)
RUN_OTHER = cases("run", ("unknown-pipeline", ("nosuch", "--out", "out"), 2))

RUNS = cases(
    "runs",
    ("list-limit-negative", ("list", "--limit", "-5"), 2),
    ("list-limit-huge", ("list", "--limit", "99999999999999999999999"), 2),
    ("show-unknown", ("show", "nosuch"), 2, None, "nosuch"),
    ("show-ambiguous", ("show", "20"), 2, None, "ambiguous"),
    ("show-sql-wildcard", ("show", "%"), 2),
    ("show-csv-without-table", ("show", "{FLOW}", "--csv", "x.csv"), 2, None, "--table"),
    ("show-csv-into-missing-folder", ("show", "{FLOW}", "--table", "squares", "--csv", "no/such/x.csv"), 2),
    ("resume-unknown", ("resume", "nosuch"), 2),
    ("resume-from-stage-unknown", ("resume", "{FLOW}", "--from-stage", "nosuch"), 2, None, "nosuch"),
    ("resume-until-stage-unknown", ("resume", "{FLOW}", "--until-stage", "nosuch"), 2, None, "nosuch"),
    ("report-folder-gone", ("report", "{GONE}"), 2, None, "no longer exists"),
    ("report-out-is-a-folder", ("report", "{FLOW}", "--out", "adir"), 2, folder("adir")),
    ("report-out-in-missing-folder", ("report", "{FLOW}", "--out", "no/such/r.html"), 2),
    needs=("flow",),
)

CONFIG = cases(
    "config",
    ("show-unknown", ("show", "nosuch"), 2, None, "nosuch"),
    ("show-not-a-pipeline", ("show", "os:path"), 2),
    ("check-missing", ("check", "demo-flow", "nope.yaml"), 2, None, "nope.yaml"),
    ("check-folder", ("check", "demo-flow", "adir"), 2, folder("adir")),
    ("check-binary", ("check", "demo-flow", "c.yaml"), 2, data("c.yaml", BINARY)),
    ("check-unknown-pipeline", ("check", "nosuch", "c.yaml"), 2, text("c.yaml", GOOD_FLOW_YAML)),
    ("check-unknown-key", ("check", "demo-flow", "c.yaml"), 2, text("c.yaml", "squares:\n  chunkz: 2\n"), "chunkz"),
    ("check-top-level-list", ("check", "demo-flow", "c.yaml"), 2, text("c.yaml", "- 1\n- 2\n")),
    ("check-anchor-bomb-in-a-value", ("check", "demo-flow", "c.yaml"), 2,
     text("c.yaml", BOMB.replace("a: &a", "x: &a").replace("*a", "*a") + "squares:\n  count: *f\n")),
    ("check-python-tag", ("check", "demo-flow", "c.yaml"), 2,
     text("c.yaml", "squares: !!python/object/apply:os.system ['touch pwned']\n")),
    ("check-unreadable", ("check", "demo-flow", "c.yaml"), 2, unreadable("c.yaml", GOOD_FLOW_YAML), "",
     {"root_skip": True}),
)

POOL_OK = "name: p\ntasks:\n  - name: a\n    command: ['true']\n"
POOL = cases(
    "pool",
    ("run-missing", ("run", "nope.yaml"), 2, None, "nope.yaml"),
    ("run-binary", ("run", "t.yaml"), 2, data("t.yaml", BINARY)),
    ("run-names-repeat", ("run", "t.yaml", "--no-progress"), 2,
     text("t.yaml", "tasks:\n  - {name: a, command: 'true'}\n  - {name: a, command: 'true'}\n"), "a"),
    ("run-repeat-without-placeholder", ("run", "t.yaml", "--no-progress"), 2,
     text("t.yaml", "tasks:\n  - {name: a, command: 'true', repeat: 3}\n")),
    ("run-command-empty-string", ("run", "t.yaml", "--no-progress"), 2, text("t.yaml", "tasks:\n  - {name: a, command: ''}\n")),
    ("run-function-does-not-import", ("run", "t.yaml", "--no-progress"), 2,
     text("t.yaml", "tasks:\n  - {name: a, function: 'nosuchmodule:f'}\n"), "nosuchmodule"),
    ("run-function-not-callable", ("run", "t.yaml", "--no-progress"), 2,
     text("t.yaml", "tasks:\n  - {name: a, function: 'math:pi'}\n"), "not callable"),
    ("run-no-tasks", ("run", "t.yaml", "--no-progress"), 2, text("t.yaml", "tasks: []\n")),
    ("run-cluster-bogus", ("run", "t.yaml", "--no-progress"), 2, text("t.yaml", POOL_OK + "cluster:\n  spec: bogus\n")),
    ("run-cluster-unreachable", ("run", "t.yaml", "--no-progress"), 3,
     text("t.yaml", POOL_OK + "cluster:\n  spec: tcp://127.0.0.1:9\n"), "cannot reach the Dask scheduler"),
    ("run-out-foreign", ("run", "t.yaml", "--out", "adir", "--no-progress"), 2,
     both(text("t.yaml", POOL_OK), folder("adir", "events.jsonl")), "did not write"),
    ("run-name-traversal", ("run", "t.yaml", "--no-progress"), 2,
     text("t.yaml", "name: ../../escape\ntasks:\n  - {name: a, command: 'true'}\n")),
    ("timeline-missing", ("timeline", "nope.jsonl"), 2, None, "nope.jsonl"),
    ("timeline-binary", ("timeline", "e.jsonl"), 2, data("e.jsonl", BINARY)),
    ("timeline-wrong-records", ("timeline", "e.jsonl"), 2, text("e.jsonl", '{"a": 1}\n[1, 2]\n')),
    ("timeline-out-in-missing-folder", ("timeline", "e.jsonl", "--out", "no/such/t"), 2,
     text("e.jsonl", '{"a": 1}\n')),
)

CLUSTER = cases(
    "cluster check",
    ("unknown-spec", ("bogus",), 2, None, "bogus"),
    ("local-zero", ("local:0",), 2),
    ("tcp-unreachable", ("tcp://127.0.0.1:9", "--timeout", "1"), 3),
    ("timeout-negative", ("local", "--timeout", "-1"), 2),
    ("timeout-nan", ("local", "--timeout", "nan"), 2),
    ("config-missing", ("local", "--config", "nope.yaml"), 2, None, "nope.yaml"),
    ("set-unknown-key", ("local", "--set", "cluster_kwargs.nope=1"), 2, None, "nope"),
    ("ssh-no-hosts", ("ssh:",), 2),
    ("config-wrong-type", ("local", "--config", "c.yaml"), 2, text("c.yaml", "cluster:\n  n_workers: many\n")),
)

DEMO = cases(
    "demo",
    ("preset-unknown", ("--preset", "bogus", "--out", "out"), 2),
    ("out-is-a-file", ("--out", "out"), 2, text("out", "x")),
    ("out-foreign-folder", ("--out", "out"), 2, folder("out", "mine.txt"), "did not write"),
    ("tiles-out-is-a-file", ("tiles", "--out", "out"), 2, text("out", "x"), "is a file"),
    ("tiles-out-foreign", ("tiles", "--out", "out"), 2, folder("out", "mine.txt"), "did not write"),
    # --overwrite, as `run --overwrite`: into a folder of others' files, but never replacing one of them
    ("overwrite-never-replaces-a-foreign-ms", ("--out", "out", "--overwrite"), 2, folder("out", "obs.ms"),
     "would be replaced"),
    ("overwrite-ical-is-a-file", ("--out", "out", "--overwrite"), 2, text("out/ical", "x"), "is a file"),
    ("tiles-overwrite-never-replaces-foreign-inputs", ("tiles", "--out", "out", "--overwrite"), 2,
     folder("out/inputs", "area_00.gpkg"), "would be replaced"),
    ("polarimetry-out-is-a-file", ("polarimetry", "--out", "out"), 2, text("out", "x"), "is a file"),
    ("polarimetry-out-foreign", ("polarimetry", "--out", "out"), 2, folder("out", "mine.txt"), "did not write"),
    ("polarimetry-overwrite-never-replaces-a-foreign-ms", ("polarimetry", "--out", "out", "--overwrite"), 2,
     folder("out", "obs.ms"), "would be replaced"),
)

ALL: list[Case] = [*GLOBAL, *SIMULATE, *FLOW_CASES, *ICAL, *CONTINUUM, *TILES, *POLARIMETRY, *RUN_FLOW, *RUN_OTHER,
                   *RUNS, *CONFIG, *POOL, *CLUSTER, *DEMO]
