"""The shared vocabulary of region (volume) and surface names.

Geometry tags every part with one of these names; mechanics, dosimetry and reports select by name,
never by tag number. Names are dotted: `<structure>.<part>[.<side>]`.
"""

from __future__ import annotations

SIDES = ("left", "right")
VERTEBRAE = ("L4", "L5")

#: Parts of the vertebral body, from the outside in.
BODY_PARTS = ("cortical", "endplate_superior", "endplate_inferior", "trabecular")
#: Posterior elements, per vertebra.
POSTERIOR_PARTS = (
    "pedicle.left",
    "pedicle.right",
    "lamina",
    "spinous_process",
    "transverse_process.left",
    "transverse_process.right",
    "articular_superior.left",
    "articular_superior.right",
    "articular_inferior.left",
    "articular_inferior.right",
)

LESION = "L4.lesion"
SEEDS = "seeds"
NUCLEUS = "disc.nucleus"
ANNULUS = "disc.annulus"
CANAL = "canal"
ENVELOPE = "envelope"

#: Groups of regions whose stress the paper reports (spinefe.mechanics.stress): the L4 cortical
#: shell and endplates, and the L4 cancellous bone (trabecular and lesion).
CORTICAL_ENDPLATES = "L4.cortical_endplates"
CANCELLOUS = "L4.cancellous"

#: Surfaces: loading and support.
L4_SUPERIOR = "L4.superior"
L5_INFERIOR = "L5.inferior"


def cartilage(side: str, level: str) -> str:
    """Facet cartilage layer on the L4 inferior or L5 superior articular process."""
    return f"facet.{side}.{level}_cartilage"


def contact_surface(side: str, level: str) -> str:
    """Cartilage surface facing the joint gap (one side of a facet contact pair)."""
    return f"facet.{side}.{level}_contact"


def articular_tip(side: str) -> str:
    """Lower face (tip) of the L4 inferior articular process: in extension it meets the L5 lamina
    beneath it, a load path of the posterior elements (Inoue 2020)."""
    return f"L4.articular_inferior.{side}_tip"


def tip_pair(side: str) -> str:
    """Key of an articular tip's contact pair (the facet joints' pairs are keyed by side)."""
    return f"tip.{side}"


#: Upper face of the L5 lamina and transverse processes, beneath the L4 articular tips.
L5_LAMINA_SUPERIOR = "L5.lamina_superior"


def vertebra_regions(level: str) -> list[str]:
    return [f"{level}.{p}" for p in BODY_PARTS + POSTERIOR_PARTS]
