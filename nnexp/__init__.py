"""nnexp: compare design choices of feed-forward neural networks."""

__version__ = "0.1.0"

__all__ = ["__version__", "gradcheck", "load_spec", "predict", "rebuild_report", "run_experiment", "run_search"]


def __getattr__(name):
    """The public API, imported on first use so `import nnexp` stays fast."""
    if name in __all__[1:]:
        from nnexp import api

        return getattr(api, name)
    raise AttributeError(f"module 'nnexp' has no attribute {name!r}")
