"""The explicit package list in pyproject.toml must name every package folder (and nothing else)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _folders(root: Path, name: str) -> set[str]:
    packages = set()
    for init in root.rglob("__init__.py"):
        rel = init.parent.relative_to(root)
        if "__pycache__" in rel.parts:
            continue
        packages.add(".".join((name, *rel.parts)) if rel.parts else name)
    return packages


def test_pyproject_lists_every_package_folder() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    on_disk = _folders(REPO / "libs" / "vitrine", "vitrine") | _folders(REPO / "services", "vitrine_services")
    assert listed == on_disk, (
        f"missing from pyproject: {on_disk - listed}; listed but absent: {listed - on_disk}"
    )


def test_cli_registers_every_documented_subcommand() -> None:
    from vitrine.cli.main import build_parser

    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    expected = {
        "train",
        "export",
        "finetune-nli",
        "eval",
        "encoder",
        "recommender",
        "feedback",
        "report",
        "simulate",
        "refresh-prior",
        "produce",
        "dlq",
        "demo",
        "bench",
        "kafka",
    }
    assert expected <= set(subcommands)


def test_the_library_never_imports_a_service() -> None:
    """Services import the library, never the reverse: the `vitrine` CLI finds the services' commands
    through entry points (before, vitrine.cli.encoder and .recommender imported vitrine_services)."""
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "libs" / "vitrine").rglob("*.py")
        if "vitrine_services" in path.read_text()
    ]
    assert offenders == []


def test_the_services_add_their_commands_through_entry_points() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    commands = config["project"]["entry-points"]["vitrine.commands"]
    assert commands == {
        "encoder": "vitrine_services.encoder.cli:register",
        "recommender": "vitrine_services.recommender.cli:register",
        "feedback": "vitrine_services.feedback.cli:register",
    }
