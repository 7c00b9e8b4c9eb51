"""The arm64 root's errors: one line each, as every EdgeMlpError (edge_mlp.errors)."""

from __future__ import annotations

from edge_mlp.errors import EdgeMlpError


class Arm64Error(EdgeMlpError):
    """The arm64 root could not be built or used (the message says why and what to do)."""


class Arm64Unavailable(Arm64Error):
    """This machine cannot run the arm64 root at all: not root, no binfmt_misc, no apt for the tools."""
