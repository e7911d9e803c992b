"""Sources of the default dimensions and parameters, cited by key in the field descriptions of
`spinefe.config.sections` and listed by `spinefe config default`."""

SOURCES: dict[str, str] = {
    "panjabi1992": (
        "Panjabi MM, Goel V, Oxland T, et al. Human lumbar vertebrae: quantitative "
        "three-dimensional anatomy. Spine 17(3):299-306, 1992, Tables 2-4 (means; values as "
        "transcribed in the CTSpinoPelvic1K morphometrics reference table, to be checked "
        "against the article)."
    ),
    "bonczar2024": (
        "Bonczar M et al. pooled review of lumbar vertebral body dimensions, Surg Radiol Anat, "
        "2024 (anterior body height, L4 26.86 mm, L5 27.44 mm)."
    ),
    "panjabi1993": (
        "Panjabi MM, Oxland T, Takata K, et al. Articular facets of the human spine: "
        "quantitative three-dimensional anatomy. Spine 18(10):1298-1310, 1993; L4 inferior "
        "facet width 14.7 mm, height 16.2 mm, as tabulated by Patel MM et al. 2007, Table 4."
    ),
    "facets": (
        "L4-L5 facet joint angle to the sagittal plane about 40-50 degrees "
        "(shared/reference/spine-mechanics.md, marked 'check')."
    ),
    "remus2021": (
        "Remus R, Lipphaus A, Neumann M, Bender B. Calibration and validation of a novel hybrid "
        "model of the lumbosacral spine in ArtiSynth. PLoS ONE 16(4):e0250456, 2021 "
        "(0.5 mm initial facet gap)."
    ),
    "shiraziadl1986": (
        "Shirazi-Adl A, Ahmed AM, Shrivastava SC. Mechanical response of a lumbar motion segment "
        "in axial torque alone and combined with compression. Spine 11(9):914-927, 1986 "
        "(posterior elements E = 3500 MPa, nu = 0.25; widely reused in lumbar FE models)."
    ),
    "paper": "Reference paper, Table 4 and section 2 (shared/reference/paper.toml).",
    "disc": (
        "L4-L5 disc height about 10-13 mm (shared/reference/spine-mechanics.md); anterior "
        "height 10.9 mm by MRI (Onishi FJ et al., Interdiscip Neurosurg 18, 2019); anterior > "
        "posterior height (lordotic wedge)."
    ),
    "blankevoort1991": (
        "Blankevoort L, Huiskes R. Ligament-bone interaction in a three-dimensional model of the "
        "knee. J Biomech Eng 113(3):263-269, 1991 (quadratic toe region of ligament force)."
    ),
    "wilke1998": (
        "Wilke HJ, Wenger K, Claes L. Testing criteria for spinal implants: recommendations for "
        "the standardization of in vitro stability testing of spinal implants. Eur Spine J "
        "7:148-154, 1998 (pure moments of 7.5 N m for lumbar segments)."
    ),
    "numerical": (
        "Numerical choice of spinefe, justified in docs/nonlinear.md (not a physical property)."
    ),
    "representative": (
        "Representative value chosen for a recognisable, meshable segment; no single source. "
        "Override it for a specific patient."
    ),
}
