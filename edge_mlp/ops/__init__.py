"""Edge-friendly ops: the vision-MLP shifts expressed with portable primitives."""

from .cycle_fc import CycleFC, cycle_shifts, official_offset
from .shift import LOWERINGS, axial_shift, axial_shift_groups, shift_channel_groups

__all__ = [
    "LOWERINGS",
    "CycleFC",
    "axial_shift",
    "axial_shift_groups",
    "cycle_shifts",
    "official_offset",
    "shift_channel_groups",
]
