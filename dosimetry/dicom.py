"""DICOM-RT export of a seed implant: RT Plan (permanent brachytherapy), RT Dose, RT Structure Set.

Written with pydicom alone. Coordinates are DICOM patient coordinates (LPS, mm), the frame of the
plan, so nothing is transformed. A `Study` carries the UIDs the three objects share (study, frame of
reference, and each object's SOP instance), so the RT Dose references the RT Plan and the RT Plan
the RT Structure Set when they are written with the same `Study`.

RT Plan (PS3.3 A.20, RT Brachy Application Setups module C.8.8.15) for permanent seeds:
- Brachy Treatment Technique PERMANENT, Brachy Treatment Type LDR.
- One Source Sequence item per seed: I-125, half-life 59.40 d, source type CYLINDER, Reference Air
  Kerma Rate = S_K (1 U = 1 uGy m^2 h^-1 = 1 uGy/h at 1 m), model and manufacturer from the seed
  model, active length = TG-43 line-source length L. Source Strength Reference Date/Time is the
  study's date/time: the strengths are those at implantation.
- One Application Setup; one Channel per seed (PS3.3 allows a Channel to be "a seed") with Source
  Movement Type FIXED and two Brachy Control Points at the seed centre (Control Point 3D Position)
  with Cumulative Time Weights 0 and 100 (PS3.3 C.8.8.15.7, example b: fixed, manually placed
  sources) and the seed axis as Control Point Orientation (C.8.8.15.14).
- Channel Total Time of a permanent seed: the mean life tau = T1/2 / ln 2 (s). A permanent implant
  delivers its initial dose rate times tau, so Total Reference Air Kerma = sum(S_K) tau
  (uGy at 1 m).
- Application Setup Type INTERSTITIAL: its Defined Terms name applicators (FLETCHER_SUIT, ...),
  none fits loose seeds, so dciodvfy warns "Unrecognized defined term" (Defined Terms may be
  extended; not an error).
- Prescription, when given: Dose Reference Sequence (SITE, TARGET, Target Prescription Dose in Gy)
  referenced from the Fraction Group (one fraction).

RT Dose: total dose to full decay (Gy) on a regular axial grid, uint32 pixels (uint16 on request)
times Dose Grid Scaling; Dose Summation Type PLAN referencing the RT Plan. RT Structure Set:
CLOSED_PLANAR contours per ROI, with the Frame of Reference module; there is no image series, so no
Contour Image Sequence and no RT Referenced Study Sequence (both Type 3): the ROIs are tied to the
frame of reference only.

Provenance: Manufacturer "spinefe", Software Versions = the spinefe package version, or, when the
`Study` carries a provenance record (spinefe.provenance), one "name version" value per entry of
it, and the whole record as JSON in a private element (group 0x0077, creator "spinefe
provenance"; `read_provenance`); Dose Comment "TG-43U1 dose to water ...". All objects are
marked UNAPPROVED (Approval module).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    ExplicitVRLittleEndian,
    RTDoseStorage,
    RTPlanStorage,
    RTStructureSetStorage,
    generate_uid,
)
from pydicom.valuerep import DSfloat

from dosimetry.plan import Plan, Seed
from dosimetry.seed_models import HALF_LIFE_H, MEAN_LIFE_H, load_seed_model

MANUFACTURER = "spinefe"
#: Private block of the provenance record (PS3.5 7.8.1: an odd group, a creator string).
PROVENANCE_GROUP, PROVENANCE_CREATOR = 0x0077, "spinefe provenance"
ISOTOPE = "I-125"
#: Dose Comment of the RT Dose (LO, at most 64 characters).
DOSE_COMMENT = "TG-43U1 dose to water, permanent implant, total to full decay"
#: Final Cumulative Time Weight of each seed's channel (PS3.3 C.8.8.15.7 example b).
FINAL_TIME_WEIGHT = 100.0

_ROI_COLOURS = ((255, 0, 0), (0, 160, 255), (0, 200, 0), (255, 200, 0), (200, 0, 255),
                (0, 220, 200), (255, 120, 0), (140, 140, 140))


def software_version() -> str:
    """Version of the installed spinefe package, "unknown" when it is not installed."""
    try:
        return importlib.metadata.version("spinefe")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Study:
    """UIDs, patient placeholders and date/time shared by the RT Plan, Dose and Structure Set.

    `created` is the study date/time and the reference date/time of the source strengths.
    """

    patient_name: str = "spinefe^phantom"
    patient_id: str = "spinefe^phantom"
    study_id: str = "1"
    description: str = "spinefe seed implant"
    created: datetime = field(default_factory=lambda: datetime.now().replace(microsecond=0))
    study_uid: str = field(default_factory=generate_uid)
    frame_of_reference_uid: str = field(default_factory=generate_uid)
    rt_plan_uid: str = field(default_factory=generate_uid)
    rt_dose_uid: str = field(default_factory=generate_uid)
    rt_struct_uid: str = field(default_factory=generate_uid)
    #: Where the objects came from (versions, commit, host...; JSON-ready), or None.
    provenance: dict | None = None

    @property
    def date(self) -> str:
        return self.created.strftime("%Y%m%d")

    @property
    def time(self) -> str:
        return self.created.strftime("%H%M%S")


# --- shared modules -----------------------------------------------------------------------------


def _ds(value) -> DSfloat:
    """A Decimal String value of at most 16 characters."""
    return DSfloat(float(value), auto_format=True)


def _ds_list(values) -> list[DSfloat]:
    return [_ds(v) for v in np.asarray(values, float).ravel()]


def _lo(text: str) -> str:
    """A Long String value: at most 64 characters, no backslash."""
    return str(text).replace("\\", "/")[:64]


def _sh(text: str) -> str:
    """A Short String value: at most 16 characters, no backslash."""
    return str(text).replace("\\", "/")[:16]


def _base(study: Study, sop_class: str, sop_instance: str, modality: str,
          series_description: str) -> Dataset:
    """Patient, General Study, RT Series, General Equipment and SOP Common modules."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: plan and ROI names are user text
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.InstanceCreationDate = study.date
    ds.InstanceCreationTime = study.time
    # Patient
    ds.PatientName = study.patient_name
    ds.PatientID = _lo(study.patient_id)
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    # General Study
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = study.date
    ds.StudyTime = study.time
    ds.ReferringPhysicianName = ""
    ds.StudyID = _sh(study.study_id)
    ds.AccessionNumber = ""
    ds.StudyDescription = _lo(study.description)
    # RT Series: each object in a series of its own (one modality per series)
    ds.Modality = modality
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = {"RTPLAN": 1, "RTDOSE": 2, "RTSTRUCT": 3}[modality]
    ds.SeriesDescription = _lo(series_description)
    ds.OperatorsName = ""
    # General Equipment: provenance
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "spinefe dosimetry"
    if study.provenance is None:
        ds.SoftwareVersions = software_version()
    else:
        ds.SoftwareVersions = [_lo(f"{k} {v}") for k, v in study.provenance.items()]
        block = ds.private_block(PROVENANCE_GROUP, PROVENANCE_CREATOR, create=True)
        block.add_new(0x01, "UT", json.dumps(study.provenance))
    return ds


def read_provenance(path: str | Path) -> dict | None:
    """The provenance record a spinefe DICOM object carries (None if it has none)."""
    ds = pydicom.dcmread(path)
    try:
        return json.loads(ds.get_private_item(PROVENANCE_GROUP, 0x01, PROVENANCE_CREATOR).value)
    except KeyError:
        return None


def _approval(ds: Dataset) -> None:
    """Approval module: exported plans are research objects, never approved for treatment."""
    ds.ApprovalStatus = "UNAPPROVED"


def _write(ds: Dataset, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


# --- RT Plan ------------------------------------------------------------------------------------


def _manufacturer_of(description: str) -> str:
    """Product name of a seed model description, without the parenthesised remarks."""
    return _lo(description.split("(")[0].strip() or description)


def _source_item(number: int, seed: Seed, study: Study) -> Dataset:
    model = load_seed_model(seed.model)
    src = Dataset()
    src.SourceNumber = number
    src.SourceModelID = _sh(model.name)
    src.SourceManufacturer = _manufacturer_of(model.description)
    src.SourceDescription = _lo(
        f"{_manufacturer_of(model.description)}; capsule {10 * model.capsule_length_cm:g} mm "
        f"x {20 * model.capsule_radius_cm:g} mm diameter")
    src.SourceType = "CYLINDER"
    src.ActiveSourceLength = _ds(10.0 * model.line_length_cm)  # TG-43 line-source length L (mm)
    src.SourceIsotopeName = ISOTOPE
    src.SourceIsotopeHalfLife = _ds(HALF_LIFE_H / 24.0)  # days
    src.SourceStrengthUnits = "AIR_KERMA_RATE"
    src.ReferenceAirKermaRate = _ds(seed.strength_U)  # uGy/h at 1 m == U
    src.SourceStrength = _ds(seed.strength_U)  # in Source Strength Units: the same S_K
    src.SourceStrengthReferenceDate = study.date
    src.SourceStrengthReferenceTime = study.time
    return src


def _channel_item(number: int, seed: Seed) -> Dataset:
    ch = Dataset()
    ch.ChannelNumber = number
    ch.ChannelLength = None
    ch.ChannelTotalTime = _ds(MEAN_LIFE_H * 3600.0)  # s: permanent seed, see module docstring
    ch.SourceMovementType = "FIXED"
    ch.TransferTubeNumber = None
    ch.ReferencedSourceNumber = number
    ch.NumberOfControlPoints = 2
    ch.FinalCumulativeTimeWeight = _ds(FINAL_TIME_WEIGHT)
    points = []
    for index, weight in enumerate((0.0, FINAL_TIME_WEIGHT)):
        cp = Dataset()
        cp.ControlPointIndex = index
        cp.CumulativeTimeWeight = _ds(weight)
        cp.ControlPointRelativePosition = _ds(0.0)
        cp.ControlPoint3DPosition = _ds_list(seed.position_mm)
        cp.ControlPointOrientation = [float(v) for v in seed.direction]  # FL
        points.append(cp)
    ch.BrachyControlPointSequence = Sequence(points)
    return ch


def write_rt_plan(plan: Plan, path: str | Path, *, study: Study | None = None,
                  prescription_Gy: float | None = None,
                  references_structure_set: bool = False) -> Path:
    """Write the seeds of `plan` as a permanent-implant RT Plan (positions mm LPS, S_K in U).

    `prescription_Gy` (total dose to full decay, Gy) goes into the Dose Reference Sequence.
    `references_structure_set`: the plan's geometry is the RT Structure Set `study.rt_struct_uid`
    (RT Plan Geometry PATIENT); otherwise TREATMENT_DEVICE (no structure set).
    """
    if not isinstance(plan, Plan):
        raise ValueError(f"plan: must be a dosimetry.plan.Plan, got {type(plan).__name__}")
    if not plan.seeds:
        raise ValueError("plan: has no seeds; an RT Plan needs at least one source")
    if prescription_Gy is not None and not (math.isfinite(prescription_Gy)
                                            and prescription_Gy > 0):
        raise ValueError(f"prescription_Gy: must be > 0 (Gy), got {prescription_Gy}")
    study = study or Study()
    ds = _base(study, RTPlanStorage, study.rt_plan_uid, "RTPLAN", f"seed plan {plan.name}")
    # Frame of Reference
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    # RT General Plan
    ds.RTPlanLabel = _sh(plan.name) or "plan"
    ds.RTPlanName = _lo(plan.name)
    ds.RTPlanDescription = (f"Permanent {ISOTOPE} seed implant, {len(plan.seeds)} seeds, "
                            f"total S_K {plan.total_strength_U:.4g} U; TG-43U1; "
                            "exported by spinefe for research, not for treatment")
    ds.RTPlanDate = study.date
    ds.RTPlanTime = study.time
    if references_structure_set:
        ds.RTPlanGeometry = "PATIENT"
        ref = Dataset()
        ref.ReferencedSOPClassUID = RTStructureSetStorage
        ref.ReferencedSOPInstanceUID = study.rt_struct_uid
        ds.ReferencedStructureSetSequence = Sequence([ref])
    else:
        ds.RTPlanGeometry = "TREATMENT_DEVICE"
    # RT Prescription
    if prescription_Gy is not None:
        dref = Dataset()
        dref.DoseReferenceNumber = 1
        dref.DoseReferenceUID = generate_uid()
        dref.DoseReferenceStructureType = "SITE"
        dref.DoseReferenceDescription = "target prescription, total dose to full decay"
        dref.DoseReferenceType = "TARGET"
        dref.TargetPrescriptionDose = _ds(prescription_Gy)
        ds.DoseReferenceSequence = Sequence([dref])
    # RT Fraction Scheme: one fraction, one application setup
    fg = Dataset()
    fg.FractionGroupNumber = 1
    fg.NumberOfFractionsPlanned = 1
    fg.NumberOfBeams = 0
    fg.NumberOfBrachyApplicationSetups = 1
    setup_ref = Dataset()
    setup_ref.ReferencedBrachyApplicationSetupNumber = 1
    fg.ReferencedBrachyApplicationSetupSequence = Sequence([setup_ref])
    if prescription_Gy is not None:
        rdr = Dataset()
        rdr.ReferencedDoseReferenceNumber = 1
        fg.ReferencedDoseReferenceSequence = Sequence([rdr])
    ds.FractionGroupSequence = Sequence([fg])
    # RT Brachy Application Setups
    ds.BrachyTreatmentTechnique = "PERMANENT"
    ds.BrachyTreatmentType = "LDR"
    machine = Dataset()
    machine.TreatmentMachineName = "seed implant"
    machine.Manufacturer = ""
    ds.TreatmentMachineSequence = Sequence([machine])
    ds.SourceSequence = Sequence(
        [_source_item(i + 1, s, study) for i, s in enumerate(plan.seeds)])
    setup = Dataset()
    setup.ApplicationSetupType = "INTERSTITIAL"  # Defined Terms name applicators; seeds have none
    setup.ApplicationSetupNumber = 1
    setup.ApplicationSetupName = _lo(f"{plan.name}: {len(plan.seeds)} permanent seeds")
    setup.TotalReferenceAirKerma = _ds(plan.total_strength_U * MEAN_LIFE_H)  # uGy at 1 m
    setup.ChannelSequence = Sequence(
        [_channel_item(i + 1, s) for i, s in enumerate(plan.seeds)])
    ds.ApplicationSetupSequence = Sequence([setup])
    _approval(ds)
    return _write(ds, path)


def read_rt_plan(path: str | Path) -> Plan:
    """Seeds (position mm, direction, S_K in U, model) of an RT Plan written by `write_rt_plan`."""
    ds = pydicom.dcmread(path)
    sources = {int(s.SourceNumber): s for s in ds.SourceSequence}
    seeds = []
    for setup in ds.ApplicationSetupSequence:
        for ch in setup.ChannelSequence:
            src = sources[int(ch.ReferencedSourceNumber)]
            cp = ch.BrachyControlPointSequence[0]
            direction = tuple(getattr(cp, "ControlPointOrientation", None) or (0.0, 0.0, 1.0))
            seeds.append(Seed(position_mm=tuple(float(v) for v in cp.ControlPoint3DPosition),
                              direction=direction,
                              strength_U=float(src.ReferenceAirKermaRate),
                              model=str(src.SourceModelID)))
    return Plan(tuple(seeds), name=str(getattr(ds, "RTPlanName", "") or ds.RTPlanLabel))


# --- RT Dose ------------------------------------------------------------------------------------


def _vector3(value, name: str, positive: bool = False) -> np.ndarray:
    """Three finite numbers (x, y, z); a spacing (`positive`) may be one number for all three."""
    try:
        a = np.asarray(value, float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be three numbers (x, y, z) in mm, got {value!r}") from None
    if a.ndim == 0 and positive:
        a = np.full(3, float(a))
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: must be three finite numbers (x, y, z) in mm, got {value!r}")
    if positive and np.any(a <= 0):
        raise ValueError(f"{name}: must be > 0 (mm), got {value!r}")
    return a


def write_rt_dose(path: str | Path, origin_mm, spacing_mm, dose_Gy, *, study: Study | None = None,
                  comment: str = DOSE_COMMENT, bits: int = 32) -> Path:
    """Write a dose grid (Gy) as RT Dose referencing the RT Plan `study.rt_plan_uid`.

    `dose_Gy` has shape (nz, ny, nx); voxel (k, j, i) is at origin_mm + (i dx, j dy, k dz) with
    spacing_mm = (dx, dy, dz) (a number: the same in all directions). Stored as unsigned integers
    of `bits` (32, or 16 for readers without 32-bit support) times Dose Grid Scaling, so values are
    exact to half a scaling step (max dose / (2^bits - 1)).
    """
    if bits not in (16, 32):
        raise ValueError(f"bits: must be 16 or 32, got {bits!r}")
    top = 2**bits - 1
    origin = _vector3(origin_mm, "origin_mm")
    spacing = _vector3(spacing_mm, "spacing_mm", positive=True)
    dose = np.asarray(dose_Gy, float)
    if dose.ndim != 3 or min(dose.shape) < 1:
        raise ValueError(f"dose_Gy: must be a 3D array (nz, ny, nx), got shape {dose.shape}")
    if max(dose.shape[1:]) > 65535:
        raise ValueError(f"dose_Gy: at most 65535 rows and columns, got shape {dose.shape}")
    if not np.all(np.isfinite(dose)):
        raise ValueError("dose_Gy: must be finite (replace NaN inside seed capsules first, "
                         "as dose_grid does)")
    if np.any(dose < 0):
        raise ValueError(f"dose_Gy: must be >= 0 (Gy), minimum {dose.min()}")
    study = study or Study()
    nz, ny, nx = dose.shape
    dmax = float(dose.max())
    # Dose Grid Scaling is a Decimal String: fix its (rounded) value first, then the pixels.
    scaling = float(str(_ds(dmax / top * (1 + 1e-6)))) if dmax > 0 else 1.0  # as written
    pixels = np.minimum(np.rint(dose / scaling), top).astype(f"<u{bits // 8}")

    ds = _base(study, RTDoseStorage, study.rt_dose_uid, "RTDOSE", "TG-43U1 total dose")
    # Frame of Reference
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    # General Image
    ds.InstanceNumber = 1
    ds.ContentDate = study.date
    ds.ContentTime = study.time
    # Image Plane: rows run along +y, columns along +x (LPS axes)
    ds.ImagePositionPatient = _ds_list(origin)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = _ds_list([spacing[1], spacing[0]])  # row spacing (y), column spacing (x)
    ds.SliceThickness = _ds(spacing[2])
    # Image Pixel and Multi-frame
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ny
    ds.Columns = nx
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = Tag("GridFrameOffsetVector")
    # RT Dose
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseComment = _lo(comment)
    ds.DoseSummationType = "PLAN"
    ref = Dataset()
    ref.ReferencedSOPClassUID = RTPlanStorage
    ref.ReferencedSOPInstanceUID = study.rt_plan_uid
    ds.ReferencedRTPlanSequence = Sequence([ref])
    ds.GridFrameOffsetVector = _ds_list(np.arange(nz) * spacing[2])
    ds.DoseGridScaling = _ds(scaling)
    ds.TissueHeterogeneityCorrection = "WATER"
    ds.PixelData = pixels.tobytes()
    return _write(ds, path)


def read_rt_dose(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin_mm, spacing_mm (dx, dy, dz), dose_Gy (nz, ny, nx)) of an axial RT Dose grid."""
    ds = pydicom.dcmread(path)
    if not np.allclose([float(v) for v in ds.ImageOrientationPatient], [1, 0, 0, 0, 1, 0]):
        raise ValueError(f"{path}: only axial grids (ImageOrientationPatient 1,0,0,0,1,0)")
    offsets = np.asarray([float(v) for v in ds.GridFrameOffsetVector])
    dz = float(offsets[1] - offsets[0]) if offsets.size > 1 else float(ds.SliceThickness or 0)
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    origin = np.array([float(v) for v in ds.ImagePositionPatient])
    origin[2] += offsets[0]
    dose = ds.pixel_array.reshape(len(offsets), ds.Rows, ds.Columns) * float(ds.DoseGridScaling)
    return origin, np.array([col_spacing, row_spacing, dz]), dose


# --- RT Structure Set ---------------------------------------------------------------------------


def _check_rois(rois) -> dict[str, list[np.ndarray]]:
    if not isinstance(rois, dict) or not rois:
        raise ValueError("rois: must be a non-empty dict of ROI name -> list of polygons")
    out = {}
    for name, polygons in rois.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"rois: ROI names must be non-empty strings, got {name!r}")
        if len(polygons) == 0:
            raise ValueError(f"rois[{name!r}]: needs at least one polygon")
        checked = []
        for k, poly in enumerate(polygons):
            p = np.asarray(poly, float)
            where = f"rois[{name!r}][{k}]"
            if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 3:
                raise ValueError(f"{where}: must be an (n, 3) array of n >= 3 points (mm), "
                                 f"got shape {p.shape}")
            if not np.all(np.isfinite(p)):
                raise ValueError(f"{where}: points must be finite")
            if np.ptp(p[:, 2]) > 1e-6:
                raise ValueError(f"{where}: a CLOSED_PLANAR contour lies at one z (axial plane); "
                                 f"z spans {p[:, 2].min()}..{p[:, 2].max()} mm")
            checked.append(p)
        out[name] = checked
    return out


def write_rt_struct(path: str | Path, rois: dict, *, study: Study | None = None,
                    interpreted_types: dict[str, str] | None = None,
                    label: str = "spinefe ROIs") -> Path:
    """Write ROIs as an RT Structure Set of CLOSED_PLANAR contours.

    `rois` maps an ROI name to its polygons, each an (n, 3) array of points (mm, LPS) at one z, not
    repeating the first point. `interpreted_types` optionally gives an RT ROI Interpreted Type per
    ROI (e.g. "GTV", "ORGAN"); empty otherwise. ROIs are numbered from 1 in the dict's order.
    """
    checked = _check_rois(rois)
    interpreted_types = interpreted_types or {}
    unknown = set(interpreted_types) - set(checked)
    if unknown:
        raise ValueError(f"interpreted_types: no ROI named {sorted(unknown)}")
    study = study or Study()
    ds = _base(study, RTStructureSetStorage, study.rt_struct_uid, "RTSTRUCT", label)
    # Frame of Reference (dciodvfy requires it in an RT Structure Set)
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    # Structure Set
    ds.StructureSetLabel = _sh(label)
    ds.StructureSetName = _lo(label)
    ds.StructureSetDate = study.date
    ds.StructureSetTime = study.time
    frame = Dataset()
    frame.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    roi_items, contour_items, observation_items = [], [], []
    for number, (name, polygons) in enumerate(checked.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = study.frame_of_reference_uid
        roi.ROIName = _lo(name)
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi_items.append(roi)

        rc = Dataset()
        rc.ROIDisplayColor = list(_ROI_COLOURS[(number - 1) % len(_ROI_COLOURS)])
        contours = []
        for k, p in enumerate(polygons, start=1):
            c = Dataset()
            c.ContourNumber = k
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(p)
            c.ContourData = _ds_list(p)
            contours.append(c)
        rc.ContourSequence = Sequence(contours)
        rc.ReferencedROINumber = number
        contour_items.append(rc)

        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = interpreted_types.get(name, "")
        obs.ROIInterpreter = ""
        observation_items.append(obs)
    ds.StructureSetROISequence = Sequence(roi_items)
    ds.ROIContourSequence = Sequence(contour_items)
    ds.RTROIObservationsSequence = Sequence(observation_items)
    _approval(ds)
    return _write(ds, path)


# --- dose grid and export -----------------------------------------------------------------------


def grid_axes(lower_mm, upper_mm, spacing_mm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Node coordinates (mm) along x, y, z: lower + k spacing up to upper (inclusive)."""
    lower = _vector3(lower_mm, "lower_mm")
    upper = _vector3(upper_mm, "upper_mm")
    spacing = _vector3(spacing_mm, "spacing_mm", positive=True)
    if np.any(upper < lower):
        raise ValueError(f"upper_mm: must be >= lower_mm in x, y, z; got {upper} < {lower}")
    counts = np.floor((upper - lower) / spacing + 1e-9).astype(int) + 1
    if np.prod(counts) > 200_000_000:
        raise ValueError(f"spacing_mm: {counts.tolist()} grid nodes are too many; coarsen")
    return tuple(lower[a] + spacing[a] * np.arange(counts[a]) for a in range(3))


def dose_grid(plan: Plan, lower_mm, upper_mm, spacing_mm, *, formalism: str = "2d",
              inside_value_Gy: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total dose to full decay (Gy) of `plan` on a regular grid: (origin_mm, spacing_mm, dose).

    Nodes run from lower_mm to upper_mm (inclusive) in steps of spacing_mm (x, y, z, mm); dose has
    shape (nz, ny, nx). TG-43 has no dose inside a seed capsule: such nodes get `inside_value_Gy`,
    by default the grid's largest finite dose (a capsule is the hottest place of an implant).
    """
    if not isinstance(plan, Plan) or not plan.seeds:
        raise ValueError("plan: must be a Plan with at least one seed")
    x, y, z = grid_axes(lower_mm, upper_mm, spacing_mm)
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    points = np.column_stack([xx.ravel(), yy.ravel(), zz.ravel()])
    from dosimetry.tg43 import dose_rate

    dose = dose_rate(points, plan, formalism=formalism).total_dose_Gy.reshape(zz.shape)
    inside = np.isnan(dose)
    if inside.all():
        raise ValueError("lower_mm, upper_mm: every grid node lies inside a seed capsule")
    if inside.any():
        fill = float(np.nanmax(dose)) if inside_value_Gy is None else float(inside_value_Gy)
        dose[inside] = fill
    spacing = _vector3(spacing_mm, "spacing_mm", positive=True)
    return np.array([x[0], y[0], z[0]]), spacing, dose


def export_plan(plan: Plan, out_dir: str | Path, rois: dict | None, lower_mm, upper_mm,
                spacing_mm, prescription_Gy: float | None = None, *, study: Study | None = None,
                formalism: str = "2d",
                interpreted_types: dict[str, str] | None = None) -> dict[str, Path]:
    """Write rtplan.dcm, rtdose.dcm (dose grid of `dose_grid`) and rtstruct.dcm (if `rois`).

    The three share one `Study`: the dose references the plan, the plan the structure set.
    Returns the written paths by modality ("rtplan", "rtdose", "rtstruct").
    """
    out_dir = Path(out_dir)
    study = study or Study()
    if rois is not None:
        _check_rois(rois)  # fail before writing anything
    origin, spacing, dose = dose_grid(plan, lower_mm, upper_mm, spacing_mm, formalism=formalism)
    paths = {}
    if rois is not None:
        paths["rtstruct"] = write_rt_struct(out_dir / "rtstruct.dcm", rois, study=study,
                                            interpreted_types=interpreted_types)
    paths["rtplan"] = write_rt_plan(plan, out_dir / "rtplan.dcm", study=study,
                                    prescription_Gy=prescription_Gy,
                                    references_structure_set=rois is not None)
    # 16-bit pixels: dciodvfy (dicom3tools 2022) aborts on 32-bit RT Dose pixel data, and the
    # scaling step (max dose / 65535, about 0.1 Gy for a 0.5 mm grid near seeds) is far below
    # the DVH's sampling error.
    paths["rtdose"] = write_rt_dose(
        out_dir / "rtdose.dcm", origin, spacing, dose, study=study, bits=16,
        comment=f"TG-43U1 ({formalism}) dose to water, total to full decay")
    return paths
