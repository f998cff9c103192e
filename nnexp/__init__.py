"""nnexp: compare design choices of feed-forward neural networks."""

__version__ = "0.1.0"

__all__ = ["__version__", "load_spec", "predict", "run_experiment"]


def __getattr__(name):
    """The public API, imported on first use so `import nnexp` stays fast."""
    if name in ("load_spec", "run_experiment", "predict"):
        from nnexp import api

        return getattr(api, name)
    raise AttributeError(f"module 'nnexp' has no attribute {name!r}")
