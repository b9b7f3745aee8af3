"""Subcommands of this concern (filled in by its package)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add this concern's subcommands to `vigil-controller`."""
