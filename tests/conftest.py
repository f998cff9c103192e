"""Shared fixtures: a spec writer; a data-set cache of the test session's own."""

import os

import pytest
import yaml

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def dataset_cache(tmp_path_factory):
    """Tests (and the processes they start) neither read nor fill the user's ~/.cache/nnexp."""
    folder = tmp_path_factory.mktemp("nnexp-cache")
    before = os.environ.get("NNEXP_CACHE_DIR")
    os.environ["NNEXP_CACHE_DIR"] = str(folder)
    yield folder
    if before is None:
        del os.environ["NNEXP_CACHE_DIR"]
    else:
        os.environ["NNEXP_CACHE_DIR"] = before


@pytest.fixture
def write_spec(tmp_path):
    """Write a mapping (or raw text) as a YAML spec file and return its path."""

    def write(content, name="spec.yaml"):
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return path

    return write
