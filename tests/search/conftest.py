"""Fixtures of the search tests: search spec files and a plan builder."""

import pytest
import yaml

from nnexp.search.space import plan_search
from nnexp.spec import load_search

IRIS = {"data": {"dataset": "iris"}, "model": {"hidden": [8]},
        "optimizer": {"name": "sgd", "lr": 0.1}, "train": {"epochs": 3, "batch_size": 32}}


@pytest.fixture
def search_file(tmp_path):
    """Write a search spec (inline iris experiment by default) and return its path."""

    def write(space, name="grid", experiment=None, **fields):
        spec = {"name": name, "experiment": experiment or IRIS, "metric": "val_accuracy", "repeats": 2,
                "space": space, **fields}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    return write


@pytest.fixture
def planned(search_file):
    """(loaded, plan) of a search spec written from the arguments."""

    def make(space, **fields):
        loaded = load_search(search_file(space, **fields))
        return loaded, plan_search(loaded)

    return make
