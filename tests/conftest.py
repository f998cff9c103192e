"""Shared fixtures: a temporary working folder and a spec writer."""

import os

import pytest
import yaml

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def write_spec(tmp_path):
    """Write a mapping (or raw text) as a YAML spec file and return its path."""

    def write(content, name="spec.yaml"):
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return path

    return write
