"""The data layer: built-in data sets and user files -> split, preprocessed arrays.

    prepared = prepare(spec.data, seed, dtype)        # one train/val/test split
    folds = prepare_folds(spec.data, seed, dtype)     # cv_folds >= 2: one per fold
    X = load_features(path, prepared.preprocessor)    # new rows for `nnexp predict`

Conventions:
- task auto: a non-numeric or bool target is a class label; a numeric one is too
  when integer-valued with 2 distinct values, or at most min(20, rows // 5)
  distinct values; anything else is regression.
- classification y: int64 indices into class_names (sorted labels; the real
  data sets keep scikit-learn's order and names). Regression y: the target
  standardised with the training rows' mean and std, shape (n,);
  preprocessor.inverse_target brings outputs back to the target's units.
- preprocessing is fitted on the training rows only (after train_size
  subsampling): impute, one-hot, then none | zscore | minmax | pca. pca z-scores
  first, then projects on the training rows' principal axes (numpy SVD, signs
  fixed); pca_whiten scales components to unit variance (ddof=1).

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
