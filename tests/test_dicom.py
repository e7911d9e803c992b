"""DICOM-RT export: round trips through pydicom, DVHs against dicompyler-core, dciodvfy.

The DVH check compares two independent routes to the target's D90 and V100 (prescription 150 Gy):
ours, `dvh.Samples` on a 0.25 mm grid of cell centres inside the analytic ellipsoid (points inside
capsules excluded), and dicompyler-core's `dvhcalc.get_dvh` on the exported RT Structure Set (the
ellipsoid's cross-sections at the dose grid's planes) and RT Dose (0.5 mm grid). dicompyler runs
with its defaults: no in-plane or between-plane interpolation, dose taken at the grid nodes whose
centres lie inside each contour, slab thickness = contour plane spacing, 1 cGy histogram bins.
D90 is compared relatively (%), V_x as absolute percentage points of the target volume.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pydicom
import pytest

from conftest import dicompyler_dvhcalc, require_or_skip

from dosimetry.dicom import (
    Study,
    dose_grid,
    export_plan,
    read_provenance,
    read_rt_dose,
    read_rt_plan,
    write_rt_dose,
    write_rt_plan,
    write_rt_struct,
)
from dosimetry.dvh import Samples
from dosimetry.plan import Plan, Seed
from dosimetry.seed_models import HALF_LIFE_H, MEAN_LIFE_H, U_PER_MCI
from dosimetry.tg43 import dose_rate

SEMI_AXES_MM = np.array([12.0, 9.0, 8.0])  # ellipsoid lesion centred at the origin
PRESCRIPTION_GY = 150.0
GRID_SPACING_MM = 0.5
GRID_LOWER_MM = (-13.0, -10.0, -8.5)
GRID_UPPER_MM = (13.0, 10.0, 8.5)
REFERENCE_STEP_MM = 0.25  # our dense sampling of the analytic ellipsoid


def lesion_plan() -> Plan:
    """16 seeds in the ellipsoid: 4 x 2 x 2 pattern, needles along z, 0.22 and 0.33 mCi."""
    seeds = []
    for i, (x, y, z) in enumerate((x, y, z) for x in (-7.5, -2.5, 2.5, 7.5)
                                  for y in (-3.5, 3.5) for z in (-3.0, 3.0)):
        mci = 0.22 if i % 2 else 0.33  # D90 near the prescription: V100 discriminates
        seeds.append(Seed(position_mm=(x, y, z), direction=(0.0, 0.0, 1.0),
                          strength_U=mci * U_PER_MCI))
    return Plan(tuple(seeds), name="ellipsoid")


def ellipse_contours(z_planes_mm, n: int = 256) -> list[np.ndarray]:
    """Cross-sections of the lesion at the planes strictly inside it, n vertices each."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    out = []
    for z in z_planes_mm:
        f = 1.0 - (z / SEMI_AXES_MM[2]) ** 2
        if f <= 1e-9:
            continue
        r = np.sqrt(f)
        out.append(np.column_stack([SEMI_AXES_MM[0] * r * np.cos(t),
                                    SEMI_AXES_MM[1] * r * np.sin(t), np.full(n, z)]))
    return out


#: A provenance record as spinefe.common.provenance writes it (shortened).
PROVENANCE = {"spinefe": "0.1.0", "git_commit": "0123456789abcdef0123456789abcdef01234567+dirty",
              "dolfinx": "0.11.0", "PETSc": "3.25.5", "h5py": None, "mpi_size": 2,
              "config_hash": "f95b6b940437a1b2", "host": "node17",
              "utc": "2026-11-29T18:48:21+00:00"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The lesion plan exported with dose grid and structure set: (plan, study, paths)."""
    plan = lesion_plan()
    study = Study(provenance=PROVENANCE)
    z_planes = np.arange(GRID_LOWER_MM[2], GRID_UPPER_MM[2] + 1e-9, GRID_SPACING_MM)
    paths = export_plan(plan, tmp_path_factory.mktemp("dicom"), {"lesion": ellipse_contours(
        z_planes)}, GRID_LOWER_MM, GRID_UPPER_MM, GRID_SPACING_MM, PRESCRIPTION_GY, study=study,
        interpreted_types={"lesion": "GTV"})
    return plan, study, paths


# --- round trips --------------------------------------------------------------------------------


def test_rt_plan_round_trip(tmp_path):
    seeds = (Seed((1.25, -3.5, 20.0), (0.0, 0.0, 1.0), 0.508),
             Seed((-4.0, 2.0, 17.5), (0.6, 0.0, 0.8), 0.635, "6702"),
             Seed((0.1, 0.2, 0.3), (1.0, 1.0, 0.0), 0.762, "IAI-125A"))
    plan = Plan(seeds, name="round trip")
    study = Study()
    path = write_rt_plan(plan, tmp_path / "rtplan.dcm", study=study, prescription_Gy=140.0)
    ds = pydicom.dcmread(path)

    assert ds.SOPClassUID == pydicom.uid.RTPlanStorage
    assert ds.SOPInstanceUID == study.rt_plan_uid
    assert ds.StudyInstanceUID == study.study_uid
    assert ds.FrameOfReferenceUID == study.frame_of_reference_uid
    assert ds.Manufacturer == "spinefe" and ds.SoftwareVersions
    assert (ds.BrachyTreatmentTechnique, ds.BrachyTreatmentType) == ("PERMANENT", "LDR")
    assert ds.RTPlanGeometry == "TREATMENT_DEVICE"  # no structure set referenced
    assert float(ds.DoseReferenceSequence[0].TargetPrescriptionDose) == 140.0

    sources = {int(s.SourceNumber): s for s in ds.SourceSequence}
    assert len(sources) == 3
    channels = ds.ApplicationSetupSequence[0].ChannelSequence
    assert len(channels) == 3
    for seed, ch in zip(seeds, channels, strict=True):
        src = sources[int(ch.ReferencedSourceNumber)]
        assert src.SourceIsotopeName == "I-125"
        assert float(src.SourceIsotopeHalfLife) == pytest.approx(59.40)
        assert float(src.SourceIsotopeHalfLife) * 24.0 == pytest.approx(HALF_LIFE_H)
        assert src.SourceType == "CYLINDER"
        assert src.SourceModelID == seed.model
        assert float(src.ReferenceAirKermaRate) == pytest.approx(seed.strength_U, rel=1e-12)
        assert ch.SourceMovementType == "FIXED"
        assert float(ch.ChannelTotalTime) == pytest.approx(MEAN_LIFE_H * 3600.0, rel=1e-9)
        cps = ch.BrachyControlPointSequence
        assert int(ch.NumberOfControlPoints) == len(cps) == 2
        assert [float(cp.CumulativeTimeWeight) for cp in cps] == [0.0, 100.0]
        for cp in cps:
            np.testing.assert_allclose([float(v) for v in cp.ControlPoint3DPosition],
                                       seed.position_mm, atol=1e-9)
            np.testing.assert_allclose(cp.ControlPointOrientation, seed.direction, atol=1e-6)
    total = float(ds.ApplicationSetupSequence[0].TotalReferenceAirKerma)
    assert total == pytest.approx(plan.total_strength_U * MEAN_LIFE_H, rel=1e-9)

    back = read_rt_plan(path)
    np.testing.assert_allclose(back.positions_mm, plan.positions_mm, atol=1e-9)
    np.testing.assert_allclose(back.directions, plan.directions, atol=1e-6)
    np.testing.assert_allclose(back.strengths_U, plan.strengths_U, rtol=1e-12)
    assert [s.model for s in back.seeds] == [s.model for s in plan.seeds]


@pytest.mark.parametrize("bits", [32, 16])
def test_rt_dose_round_trip(tmp_path, bits):
    # Distinct spacings and a dose that differs along each axis catch any axis mix-up.
    origin, spacing = np.array([-5.0, 3.0, 10.0]), np.array([0.5, 0.75, 1.25])
    nz, ny, nx = 4, 5, 6
    z, y, x = np.meshgrid(*(origin[a] + spacing[a] * np.arange(n)
                            for a, n in ((2, nz), (1, ny), (0, nx))), indexing="ij")
    dose = 100.0 + 1.0 * x + 10.0 * y + 100.0 * z  # Gy, at node (x, y, z)
    study = Study()
    path = write_rt_dose(tmp_path / "rtdose.dcm", origin, spacing, dose, study=study, bits=bits)
    ds = pydicom.dcmread(path)

    assert (ds.DoseUnits, ds.DoseType, ds.DoseSummationType) == ("GY", "PHYSICAL", "PLAN")
    assert "TG-43U1 dose to water" in ds.DoseComment
    assert ds.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == study.rt_plan_uid
    assert ds.FrameOfReferenceUID == study.frame_of_reference_uid
    assert ds.BitsAllocated == bits and ds.PixelRepresentation == 0
    assert (int(ds.NumberOfFrames), ds.Rows, ds.Columns) == (nz, ny, nx)
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], origin)
    np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [0.75, 0.5])  # rows: y
    np.testing.assert_allclose([float(v) for v in ds.GridFrameOffsetVector],
                               spacing[2] * np.arange(nz))
    scaling = float(ds.DoseGridScaling)
    assert scaling <= dose.max() / (2**bits - 1) * 1.001
    stored = ds.pixel_array.astype(float) * scaling
    np.testing.assert_allclose(stored, dose, rtol=0, atol=0.5 * scaling * (1 + 1e-9))

    o, s, d = read_rt_dose(path)
    np.testing.assert_allclose(o, origin)
    np.testing.assert_allclose(s, spacing)
    np.testing.assert_allclose(d, dose, rtol=0, atol=0.5 * scaling * (1 + 1e-9))


def test_dose_grid_is_tg43_total_dose():
    plan = lesion_plan()
    origin, spacing, dose = dose_grid(plan, (-4.0, -4.0, -4.0), (4.0, 4.0, 4.0), (1.0, 0.5, 2.0))
    assert dose.shape == (5, 17, 9)  # (nz, ny, nx)
    np.testing.assert_allclose(origin, [-4.0, -4.0, -4.0])
    np.testing.assert_allclose(spacing, [1.0, 0.5, 2.0])
    k, j, i = 3, 7, 2
    point = origin + spacing * np.array([i, j, k])
    expected = dose_rate(point[None, :], plan).total_dose_Gy[0]
    assert dose[k, j, i] == pytest.approx(expected, rel=1e-12)
    # A node at a seed centre lies inside its capsule: it gets the largest finite dose.
    origin, spacing, dose = dose_grid(plan, (-2.5, -3.5, -4.0), (2.5, 3.5, 4.0), 1.0)
    inside = dose_rate(np.array([[-2.5, -3.5, -3.0]]), plan)
    assert inside.inside_capsule[0]
    assert np.all(np.isfinite(dose))
    assert dose[1, 0, 0] == dose.max()


def test_exported_objects_reference_each_other(exported):
    plan, study, paths = exported
    rtplan, rtdose, rtstruct = (pydicom.dcmread(paths[k]) for k in ("rtplan", "rtdose",
                                                                    "rtstruct"))
    for ds in (rtplan, rtdose, rtstruct):
        assert ds.StudyInstanceUID == study.study_uid
        assert ds.PatientName == "spinefe^phantom"
    assert len({rtplan.SeriesInstanceUID, rtdose.SeriesInstanceUID,
                rtstruct.SeriesInstanceUID}) == 3
    assert rtdose.ReferencedRTPlanSequence[0].ReferencedSOPInstanceUID == rtplan.SOPInstanceUID
    assert rtplan.RTPlanGeometry == "PATIENT"
    assert (rtplan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID
            == rtstruct.SOPInstanceUID)
    frames = {rtplan.FrameOfReferenceUID, rtdose.FrameOfReferenceUID,
              rtstruct.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID,
              rtstruct.StructureSetROISequence[0].ReferencedFrameOfReferenceUID}
    assert frames == {study.frame_of_reference_uid}
    # Contours come back as written: closed planar, at the dose grid's planes, on the ellipse.
    contours = rtstruct.ROIContourSequence[0].ContourSequence
    assert rtstruct.StructureSetROISequence[0].ROIName == "lesion"
    assert len(contours) == 31  # planes z = -7.5 ... 7.5 mm
    for c in contours:
        assert c.ContourGeometricType == "CLOSED_PLANAR"
        p = np.asarray([float(v) for v in c.ContourData]).reshape(-1, 3)
        assert len(p) == int(c.NumberOfContourPoints)
        np.testing.assert_allclose(((p / SEMI_AXES_MM) ** 2).sum(axis=1), 1.0, atol=1e-9)
    # The dose grid is the TG-43 total dose at the nodes (capsule nodes filled, see dose_grid).
    origin, spacing, dose = read_rt_dose(paths["rtdose"])
    np.testing.assert_allclose(origin, GRID_LOWER_MM)
    k, j, i = 17, 20, 26  # node (0, 0, 0)
    assert dose[k, j, i] == pytest.approx(  # within half a 16-bit scaling step
        dose_rate(np.zeros((1, 3)), plan).total_dose_Gy[0],
        abs=0.5001 * float(rtdose.DoseGridScaling))
    np.testing.assert_allclose(read_rt_plan(paths["rtplan"]).positions_mm, plan.positions_mm)


# --- DVH: ours against dicompyler-core ----------------------------------------------------------


def reference_samples(plan: Plan) -> Samples:
    """Our DVH samples: cell centres of a fine grid inside the analytic ellipsoid, off capsules."""
    h = REFERENCE_STEP_MM
    axes = [np.arange(-a + h / 2, a, h) for a in SEMI_AXES_MM]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    points = np.column_stack([x.ravel(), y.ravel(), z.ravel()])
    points = points[((points / SEMI_AXES_MM) ** 2).sum(axis=1) < 1.0]
    dose = dose_rate(points, plan).total_dose_Gy
    outside = np.isfinite(dose)
    return Samples.of(dose[outside], np.full(outside.sum(), h**3))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_dvh_agrees_with_dicompyler(exported, record_property):
    dvhcalc = dicompyler_dvhcalc()
    plan, _, paths = exported
    ours = reference_samples(plan)
    theirs = dvhcalc.get_dvh(str(paths["rtstruct"]), str(paths["rtdose"]), 1)

    def their_V(dose_Gy: float) -> float:
        return 100.0 * theirs.volume_constraint(dose_Gy, "Gy").value / theirs.volume

    d90_ours, d90_theirs = ours.D(90.0), theirs.statistic("D90").value
    rows = {"D90_rel_percent": 100.0 * (d90_theirs / d90_ours - 1.0)}
    analytic_cc = 4.0 / 3.0 * np.pi * SEMI_AXES_MM.prod() / 1000.0
    lines = [f"volume: ours {ours.volume_mm3_total / 1000:.4f} cc (capsules excluded), "
             f"dicompyler {theirs.volume:.4f} cc, analytic {analytic_cc:.4f} cc",
             f"D90: ours {d90_ours:.2f} Gy, dicompyler {d90_theirs:.2f} Gy, "
             f"difference {rows['D90_rel_percent']:+.3f} %"]
    for level in (100, 150, 200):
        dose = PRESCRIPTION_GY * level / 100.0
        v_ours, v_theirs = ours.V(dose), their_V(dose)
        rows[f"V{level}_pp"] = v_theirs - v_ours
        lines.append(f"V{level} ({dose:g} Gy): ours {v_ours:.2f} %, dicompyler {v_theirs:.2f} %, "
                     f"difference {v_theirs - v_ours:+.3f} percentage points")
    print("\n".join(lines))
    for key, value in rows.items():
        record_property(key, round(float(value), 4))  # plain float: xdist must send it

    assert abs(rows["D90_rel_percent"]) < 2.0
    for level in (100, 150, 200):
        assert abs(rows[f"V{level}_pp"]) < 2.0, lines


def test_every_object_carries_the_provenance(exported):
    """Software Versions lists the record's entries; the whole record round-trips as JSON from
    the private element; an object written without a record carries none."""
    for path in exported[2].values():
        ds = pydicom.dcmread(path)
        assert "dolfinx 0.11.0" in ds.SoftwareVersions and "mpi_size 2" in ds.SoftwareVersions
        assert read_provenance(path) == PROVENANCE
    bare = write_rt_plan(lesion_plan(), exported[2]["rtplan"].parent / "bare.dcm")
    assert read_provenance(bare) is None


# --- dciodvfy -----------------------------------------------------------------------------------


def dciodvfy(path) -> subprocess.CompletedProcess:
    exe = require_or_skip("dciodvfy", "dicom3tools")
    return subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)


def check_dciodvfy(path) -> list[str]:
    """dciodvfy's warnings for `path`; fails on any error line or abnormal exit."""
    run = dciodvfy(path)
    lines = (run.stdout + run.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert run.returncode == 0 and not errors, "\n".join(lines)
    warnings = [line for line in lines if line.startswith("Warning")]
    print(f"dciodvfy {path.name}: {len(warnings)} warning(s)", *warnings, sep="\n")
    return warnings


@pytest.mark.parametrize("kind", ["rtplan", "rtstruct"])
def test_dciodvfy_plan_and_structure_set(exported, kind):
    warnings = check_dciodvfy(exported[2][kind])
    # The one remaining warning: Application Setup Type's Defined Terms name applicators only.
    assert all("Application Setup Type" in w for w in warnings)


def test_dciodvfy_rt_dose(exported):
    """The exported RT Dose (16-bit pixels: dciodvfy of dicom3tools 2022 aborts on 32-bit)."""
    assert check_dciodvfy(exported[2]["rtdose"]) == []


# --- bad input ----------------------------------------------------------------------------------


def test_bad_input_names_the_argument(tmp_path):
    plan = lesion_plan()
    with pytest.raises(ValueError, match="plan"):
        write_rt_plan(Plan(()), tmp_path / "p.dcm")
    with pytest.raises(ValueError, match="plan"):
        dose_grid(Plan(()), (0, 0, 0), (1, 1, 1), 0.5)
    with pytest.raises(ValueError, match="prescription_Gy"):
        write_rt_plan(plan, tmp_path / "p.dcm", prescription_Gy=-1.0)
    good = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match="dose_Gy"):
        write_rt_dose(tmp_path / "d.dcm", (0, 0, 0), 1.0, np.ones((3, 4)))
    with pytest.raises(ValueError, match="dose_Gy"):
        write_rt_dose(tmp_path / "d.dcm", (0, 0, 0), 1.0, np.where(good > 0, np.nan, 0))
    with pytest.raises(ValueError, match="dose_Gy"):
        write_rt_dose(tmp_path / "d.dcm", (0, 0, 0), 1.0, np.full_like(good, np.inf))
    with pytest.raises(ValueError, match="dose_Gy"):
        write_rt_dose(tmp_path / "d.dcm", (0, 0, 0), 1.0, -good)
    with pytest.raises(ValueError, match="origin_mm"):
        write_rt_dose(tmp_path / "d.dcm", (0, 0), 1.0, good)
    with pytest.raises(ValueError, match="origin_mm"):
        write_rt_dose(tmp_path / "d.dcm", "origin", 1.0, good)
    with pytest.raises(ValueError, match="spacing_mm"):
        write_rt_dose(tmp_path / "d.dcm", (0, 0, 0), (1.0, 0.0, 1.0), good)
    with pytest.raises(ValueError, match="bits"):
        write_rt_dose(tmp_path / "d.dcm", (0, 0, 0), 1.0, good, bits=8)
    with pytest.raises(ValueError, match="upper_mm"):
        dose_grid(plan, (0, 0, 0), (1, -1, 1), 0.5)
    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    with pytest.raises(ValueError, match="rois"):
        write_rt_struct(tmp_path / "s.dcm", {})
    tilted = square.copy()
    tilted[2, 2] = 0.1  # not at one z
    with pytest.raises(ValueError, match=r"rois\['a'\]\[1\]"):
        write_rt_struct(tmp_path / "s.dcm", {"a": [square, tilted]})
    with pytest.raises(ValueError, match=r"rois\['a'\]\[0\]"):
        write_rt_struct(tmp_path / "s.dcm", {"a": [square[:2]]})
    assert not list(tmp_path.iterdir())  # nothing written on bad input
