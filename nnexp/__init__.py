"""nnexp: compare design choices of feed-forward neural networks.

The Python API (each imported on first use, so `import nnexp` stays fast):
run_experiment, run_search, rebuild_report, predict, gradcheck, load_spec;
errors (nnexp.errors.NnexpError and its kinds, raised for bad input).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "gradcheck", "load_spec", "predict", "rebuild_report", "run_experiment", "run_search"]


def __getattr__(name):
    """The public API, imported on first use so `import nnexp` stays fast."""
    if name in __all__[1:]:
        from nnexp import api

        return getattr(api, name)
    if name == "errors":  # `nnexp.errors.NnexpError` after a plain `import nnexp`, as the README writes it
        import nnexp.errors

        return nnexp.errors
    raise AttributeError(f"module 'nnexp' has no attribute {name!r}")


def __dir__():
    """What tab completion and dir() show: the API, not only what has been imported yet."""
    return sorted({*globals(), *__all__, "errors"})
