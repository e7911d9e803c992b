"""spinefe: L4-L5 finite-element model for dual (dose and mechanics) I-125 seed implant planning."""

__version__ = "0.1.0"
