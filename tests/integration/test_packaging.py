"""The wheel is what users get: build it, install it into a fresh venv, import every module."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUBPACKAGES = ("core", "schemas", "consumers", "producers", "devstack")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("simstream-*.whl")
    return built


def test_wheel_has_one_import_root_and_every_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    roots = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert roots == {"simstream"}
    sources = {p.relative_to(REPO).as_posix() for sub in SUBPACKAGES for p in (REPO / sub).rglob("*.py")}
    packaged = {n.removeprefix("simstream/") for n in names if n.endswith(".py")}
    assert sources <= packaged, f"left out of the wheel: {sorted(sources - packaged)}"
    assert "simstream/devstack/pom.xml" in names
    assert "simstream/devstack/tools-pom.xml" in names
    assert "simstream/data/abt-buy/Abt.csv" in names
    assert any(n.startswith("simstream/schemas/json/") for n in names)


def test_fresh_venv_imports_every_module(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # Third-party dependencies come from the project's environment (no second multi-GB torch
    # download); the path is appended, so the wheel's own simstream is the one imported.
    fresh_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)],
        check=True,
    )
    (fresh_site / "zz_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for bare in ("core", "schemas", "consumers", "producers", "devstack"):
        assert not (fresh_site / bare).exists(), f"a bare top-level {bare!r} landed in site-packages"
    script = (
        "import importlib, pkgutil, simstream\n"
        f"assert simstream.__file__.startswith({str(fresh_site)!r}), simstream.__file__\n"
        "mods = [m.name for m in pkgutil.walk_packages(simstream.__path__, 'simstream.')]\n"
        "mods = [m for m in mods if m != 'simstream.__main__']  # running it is not importing it\n"
        "for name in mods: importlib.import_module(name)\n"
        "print(len(mods))\n"
    )
    # Run outside the repository: `python -c` puts the working directory first on sys.path.
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip()) >= 20
    cli = subprocess.run(
        [str(env_dir / "bin" / "simstream"), "config"], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    assert '"input_topic": "products"' in cli.stdout
