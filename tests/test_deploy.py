"""Static checks of the deployment files: there is no Docker engine here to run them."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT


def test_compose_file_is_consistent_with_the_dockerfile() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    dockerfile = (ROOT / "Dockerfile").read_text()
    gateway = compose["services"]["gateway"]
    exposed = re.findall(r"^EXPOSE (\d+)", dockerfile, re.MULTILINE)
    assert exposed == ["8080"]
    assert gateway["ports"] == [f"{exposed[0]}:{exposed[0]}"]
    assert (
        "--port" in gateway["command"]
        and gateway["command"][gateway["command"].index("--port") + 1] == "8080"
    )
    assert gateway["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert gateway["build"]["dockerfile"] == "Dockerfile"
    assert "redis" in compose["services"]


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 2
    assert re.search(r"^USER (?!root|0\b)\S+", dockerfile, re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    # Every path the image copies exists in the repository.
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path
