"""seq2labels: multi-label classification as sequence generation."""

__version__ = "0.1.0"

from .errors import ConfigError, DataFormatError, ModelFormatError, Seq2LabelsError


def __getattr__(name: str):
    # imported lazily so that `import seq2labels` stays cheap (no torch) for the CLI's --help
    if name == "SGMClassifier":
        from .estimators import SGMClassifier
        return SGMClassifier
    if name in ("LabelGenerator", "Prediction", "train"):
        from . import recipe
        return getattr(recipe, name)
    if name in ("load_model", "save_model"):
        from . import io
        return getattr(io, name)
    raise AttributeError(f"module 'seq2labels' has no attribute {name!r}")


__all__ = ["SGMClassifier", "LabelGenerator", "Prediction", "train", "load_model", "save_model",
           "ConfigError", "DataFormatError", "ModelFormatError", "Seq2LabelsError", "__version__"]
