"""The data layer: built-in data sets and user files -> split, preprocessed arrays.

    prepared = prepare(spec.data, seed, dtype)        # one train/val/test split
    folds = prepare_folds(spec.data, seed, dtype)     # cv_folds >= 2: one per fold
    X = load_features(path, prepared.preprocessor)    # new rows for `nnexp predict`

Only NumPy is imported here; pandas and scikit-learn load when data is first read.
"""

from nnexp.data.datasets import DATASETS, Table, list_datasets, load_table
from nnexp.data.pipeline import PreparedData, load_features, prepare, prepare_folds
from nnexp.data.preprocess import DataWarning, Preprocessor

__all__ = [
    "DATASETS",
    "DataWarning",
    "PreparedData",
    "Preprocessor",
    "Table",
    "list_datasets",
    "load_features",
    "load_table",
    "prepare",
    "prepare_folds",
]
