"""A numpy interpreter for Core ML ML programs, so `.mlpackage` numbers can be checked on Linux."""

from .interpreter import (
    PRECISIONS,
    MilInterpreter,
    MilProgramError,
    MilRuntimeError,
    TracedOp,
    UnsupportedMilOpError,
    UnsupportedMilOpVersionError,
    UnsupportedMilShapeError,
    load_program,
)
from .kernels import KERNELS

__all__ = [
    "KERNELS", "PRECISIONS", "MilInterpreter", "MilProgramError", "MilRuntimeError", "TracedOp",
    "UnsupportedMilOpError", "UnsupportedMilOpVersionError", "UnsupportedMilShapeError", "load_program",
]
