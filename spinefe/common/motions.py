"""The motions of a spinal segment under pure moments: their names and moment axes (LPS)."""

#: Unit moment (and positive rotation) axis of each motion in LPS. A positive rotation about +x
#: turns +z towards -y (anterior): flexion; about +y it turns +z towards +x (left): left lateral
#: bending; about +z it turns -y (anterior) towards +x (left): left axial rotation.
MOTIONS = {
    "flexion": (1.0, 0.0, 0.0),
    "extension": (-1.0, 0.0, 0.0),
    "lateral_bending_left": (0.0, 1.0, 0.0),
    "lateral_bending_right": (0.0, -1.0, 0.0),
    "axial_rotation_left": (0.0, 0.0, 1.0),
    "axial_rotation_right": (0.0, 0.0, -1.0),
}
