"""The wheel carries every package of `gateway/`: pyproject lists them one by one (the shipped
config is mapped in as `gateway._config`), so a new package missing from the list would install
from a checkout in editable mode and fail to import from a real install."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def test_pyproject_lists_every_package_of_the_gateway() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "gateway").rglob("__init__.py")
    }
    listed = set(setuptools["packages"]) - set(setuptools["package-dir"])
    assert listed == on_disk
