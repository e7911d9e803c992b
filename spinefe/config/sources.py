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
    "claeson2017": (
        "Claeson AA, Barocas VH. Planar biaxial extension of the lumbar facet capsular ligament "
        "reveals significant in-plane shear forces. J Mech Behav Biomed Mater, 2017, pp 127-136 "
        "(posterior capsule collagen aligned across the joint, one family nearly horizontal)."
    ),
    "nachemson1968": (
        "Nachemson AL, Evans JH. Some mechanical properties of the third human lumbar "
        "interlaminar ligament (ligamentum flavum). J Biomech 1:211-220, 1968 (the ligament is "
        "pre-tensioned in the neutral posture; its strain was not re-read for spinefe)."
    ),
    "capsule_insitu": (
        "Gacek E, Ellingson AM, Barocas VH. In situ lumbar facet capsular ligament strains due "
        "to joint pressure and residual strain. J Biomech Eng 144(6):061007, 2022, "
        "doi:10.1115/1.4053993 (abstract: 20 facet joints L2-L5 of five spines; released from "
        "the vertebrae the capsule shrank by 4-5 % on average; its in-vivo state is tension)"
    ),
    "wilke1998": (
        "Wilke HJ, Wenger K, Claes L. Testing criteria for spinal implants: recommendations for "
        "the standardization of in vitro stability testing of spinal implants. Eur Spine J "
        "7:148-154, 1998 (pure moments of 7.5 N m for lumbar segments)."
    ),
    "inoue2020": (
        "Inoue N, Orias AAE, Segami K. Biomechanics of the lumbar facet joint. Spine Surg Relat "
        "Res 4(1):1-7, 2020, doi:10.22603/ssrr.2019-0017 (review: axial load passes through the "
        "tip of the inferior articular process in extended postures)"
    ),
    "patwardhan1999": (
        "Patwardhan AG, Havey RM, Meade KP, Lee B, Dunlap B. A follower load increases the "
        "load-carrying capacity of the lumbar spine in compression. Spine 24(10):1003-1009, "
        "1999 (a compressive preload along the spine's curvature, the in-vitro protocol)."
    ),
    "rohlmann2009": (
        "Rohlmann A, Zander T, Rao M, Bergmann G. Applying a follower load delivers realistic "
        "results for simulating standing. J Biomech 42(10):1520-1526, 2009 (standing as a "
        "500 N follower load)."
    ),
    "gruber2024": (
        "Gruber G, Nicolini LF, Ribeiro M, et al. Comparative FEM study on intervertebral disc "
        "modeling: Holzapfel-Gasser-Ogden vs. structural rebars. Front Bioeng Biotechnol "
        "12:1391957, 2024; L4-L5 annulus HGO set calibrated to disc-only ROM, from the authors' "
        "material cards (github.com/GruberGabriel/ComparativeAnalysisFEModelsIVD, MAT/HGO): "
        "C10 = 0.1351 MPa, kappa = 0.0752, k1 1.70-3.73 MPa (mean 2.67), k2 37.4-89.6 (mean "
        "60.9), fibre angle 31.2-37.7 deg (mean 34.5) over 25 regions."
    ),
    "lu1996": (
        "Lu YM, Hutton WC, Gharpuray VM. Do bending, twisting, and diurnal fluid changes in the "
        "disc affect the propensity to prolapse? Spine 21(22):2570-2579, 1996; transversely "
        "isotropic cancellous bone E_x = E_y = 140, E_z = 200 MPa, nu_xy = 0.45, nu_xz = nu_yz "
        "= 0.315, G = 48.3 MPa, as tabulated in later lumbar FE studies (not re-read in the "
        "original; nu_xz read as the contraction along z under load along x, since 0.315 = "
        "0.45 x 140 / 200)."
    ),
    "morgan2003": (
        "Morgan EF, Bayraktar HH, Keaveny TM. Trabecular bone modulus-density relationships "
        "depend on anatomic site. J Biomech 36(7):897-904, 2003; vertebra E = 4730 rho^1.56 "
        "(MPa, apparent density in g/cm^3)."
    ),
    "perie2005": (
        "Perie D, Korda D, Iatridis JC. Confined compression experiments on bovine nucleus "
        "pulposus and annulus fibrosus: sensitivity of the experiment in the determination of "
        "compressive modulus and hydraulic permeability. J Biomech 38:2164-2171, 2005 "
        "(abstract; bovine caudal discs, nonlinear biphasic fits): nucleus H_A0 = 0.31 MPa, "
        "k0 = 0.67e-15 m^4/(N s); annulus H_A0 = 0.74 MPa, k0 = 0.23e-15 m^4/(N s). Human "
        "lumbar FE models use the same order: k0 = 3e-16 m^4/(N s) for annulus and healthy "
        "nucleus after Argoubi & Shirazi-Adl (J Biomech 29:1331, 1996), as tabulated in BMC "
        "Musculoskelet Disord 2015, doi:10.1186/s12891-015-0686-z, Table 1 (not re-read in the "
        "original)."
    ),
    "numerical": (
        "Numerical choice of spinefe, justified in docs/nonlinear.md (not a physical property)."
    ),
    "representative": (
        "Representative value chosen for a recognisable, meshable segment; no single source. "
        "Override it for a specific patient."
    ),
}
