"""The Go command-line tools the tests run (grpcurl, ghz), installed by `make go-tools`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def go_bin_dir() -> Path:
    """Where `make go-tools` installs them: $VITRINE_GO_BIN, else ~/.cache/vitrine/go/bin."""
    if explicit := os.environ.get("VITRINE_GO_BIN"):
        return Path(explicit)
    cache = Path(os.environ.get("VITRINE_CACHE", Path.home() / ".cache" / "vitrine"))
    return cache / "go" / "bin"


def go_tool(name: str) -> str:
    """The path of `name`; fails (never skips) with how to install it when it is missing."""
    candidate = go_bin_dir() / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make go-tools` (installs it into {go_bin_dir()})")
    return found
