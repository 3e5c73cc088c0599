"""deploy/docker/Dockerfile builds the serving image: checked against pyproject.toml and the repository
(no container engine here)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from vitrine_services.encoder.settings import EncoderSettings
from vitrine_services.recommender.settings import RecommenderSettings

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
TRAINING_ONLY = ("torch", "onnx", "onnxscript", "sentence-transformers", "transformers", "scikit-learn")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = [
        *project["dependencies"],
        *(d for extra in project["optional-dependencies"].values() for d in extra),
    ]
    return dict(s.split("==") for s in specs)


def test_serving_dependencies_have_no_training_stack() -> None:
    base = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split("==")[0] for d in base}
    assert "onnxruntime" in names  # CPU build of onnxruntime (onnxruntime-gpu is a different package)
    assert not names & set(TRAINING_ONLY), "`pip install .` must stay serving-only: move these to `train`"


def test_the_image_installs_the_base_package_only_and_refuses_torch() -> None:
    runs = [args for keyword, args in _instructions() if keyword == "RUN"]
    joined = "\n".join(runs)
    assert "pip wheel --no-deps --wheel-dir /wheels ." in joined
    assert "pip install /wheels/*.whl" in joined
    assert "[train" not in joined and "[dev" not in joined, "no extras in the serving image"
    assert "find_spec('torch')" in joined, "the build fails if torch slipped in"


def test_build_tools_use_the_project_pins() -> None:
    pins = _pins()
    for args in (a for k, a in _instructions() if k == "RUN"):
        for name, version in re.findall(r"([a-z][a-z0-9_-]+)==([0-9][^\s]*)", args):
            assert pins.get(name) == version, f"Dockerfile pins {name}=={version}, pyproject {pins.get(name)}"


def test_base_image_matches_the_supported_python() -> None:
    args = dict(a.split("=", 1) for k, a in _instructions() if k == "ARG" and "=" in a)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minor = re.search(r">=3\.(\d+)", requires).group(1)  # type: ignore[union-attr]
    assert args["PYTHON_IMAGE"].startswith(f"python:3.{minor}-slim")
    froms = [a for k, a in _instructions() if k == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]


def test_copied_sources_exist() -> None:
    for keyword, args in _instructions():
        if keyword != "COPY" or "--from=" in args:
            continue
        *sources, _dest = [w for w in shlex.split(args) if not w.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def test_runs_as_the_numeric_non_root_user_the_manifests_expect() -> None:
    users = [a for k, a in _instructions() if k == "USER"]
    assert users == ["10001"]
    assert "runAsUser: 10001" in (REPO / "deploy" / "k8s" / "recommender.yaml").read_text()


@pytest.mark.parametrize(
    ("port", "field"),
    [
        (RecommenderSettings.model_fields["grpc_port"].default, "recommender gRPC"),
        (RecommenderSettings.model_fields["metrics_port"].default, "recommender metrics"),
        (EncoderSettings.model_fields["metrics_port"].default, "encoder metrics"),
    ],
)
def test_exposed_ports_are_the_settings_defaults(port: int, field: str) -> None:
    exposed = {int(p) for k, a in _instructions() if k == "EXPOSE" for p in a.split()}
    assert port in exposed, field


def test_entry_point_is_the_cli_with_its_two_services() -> None:
    instructions = dict(_instructions())
    assert instructions["ENTRYPOINT"] == '["vitrine"]'
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["vitrine"] == "vitrine.cli.main:main"
    for command in ("encoder", "recommender"):  # the services add their commands (entry points)
        assert (
            project["entry-points"]["vitrine.commands"][command] == f"vitrine_services.{command}.cli:register"
        )
        assert (REPO / "services" / command / "cli.py").is_file()
