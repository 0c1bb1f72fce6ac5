"""Release hygiene: the version, the changelog, and lower bounds that CI tests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from _hang import HANG_S

import idrop

# The standard library's TOML reader exists from Python 3.11, the version CI runs.
tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11 (CI runs 3.11)")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: Package names whose CI pin has another name (the CPU build of TensorFlow).
PIN_NAME = {"tensorflow": "tensorflow-cpu"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def ci_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "ci.txt").read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_norm(name)] = version.strip()
    return pins


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.match(r"\d+(\.\d+)*", version).group(0).split("."))


def lower_bounds() -> list[tuple[str, str]]:
    project = PYPROJECT["project"]
    specs = list(project["dependencies"])
    for deps in project["optional-dependencies"].values():
        specs += [d for d in deps if not d.startswith("idrop[")]
    out = []
    for spec in specs:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9.]+)", spec.strip())
        assert match, f"{spec!r}: every requirement is 'name>=version' (a lower bound CI tests)"
        out.append((_norm(match.group(1)), match.group(2)))
    return out


def test_version_command():
    out = subprocess.run([sys.executable, "-m", "idrop", "--version"], capture_output=True, text=True, timeout=HANG_S)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"idrop {idrop.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", idrop.__version__)


def test_changelog_keeps_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "keepachangelog.com" in text and "## [Unreleased]" in text
    sections = re.findall(r"^### (.+)$", text, re.MULTILINE)
    assert sections and set(sections) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    for release in re.findall(r"^## \[(\d[^\]]*)\]", text, re.MULTILINE):
        assert _release(release) <= _release(idrop.__version__), f"changelog release {release} is ahead of the package"


@pytest.mark.parametrize(("name", "bound"), lower_bounds(), ids=lambda v: str(v))
def test_lower_bound_is_what_ci_tests(name, bound):
    """Each lower bound is the CI pin's minor release (>= 1.0) or the pin itself (0.x), never older."""
    pins = ci_pins()
    pinned = pins.get(PIN_NAME.get(name, name))
    assert pinned is not None, f"{name} has a lower bound in pyproject.toml but no pin in requirements/ci.txt"
    tested, lower = _release(pinned), _release(bound)
    assert lower <= tested, f"{name}>={bound} excludes the version CI tests ({pinned})"
    if tested[0] >= 1:
        assert lower[:2] == tested[:2], (
            f"{name}>={bound}: CI tests {pinned}; the bound should be {tested[0]}.{tested[1]}"
        )
    else:
        padded = lower + (0,) * (len(tested) - len(lower))
        assert padded == tested, f"{name}>={bound}: CI tests {pinned}, a 0.x release; the bound should be {pinned}"


def test_license_is_declared_and_shipped():
    """The MIT licence as an SPDX expression (PEP 639), and its text in the distribution."""
    from importlib.metadata import metadata

    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert metadata("idrop")["License-Expression"] == "MIT"
