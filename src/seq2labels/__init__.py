"""seq2labels: multi-label classification as sequence generation.

The package is layered; each layer imports only the ones below it (checked by
``tests/test_architecture.py`` with import-linter)::

    apps         cli/, serve, report, explain, estimators (SGMClassifier), predict_files
    experiments  compare, ablation, crossdata: protocols that train and tabulate many models
    pipeline | baselines   the trained SGM (LabelGenerator, its files, export) | classic peers
    training     the generic loop, losses, precision, schedules, seeding, distributed
    models       encoders/, the SGM decoder, baseline networks (nn.Module only)
    decoding     greedy and beam search over any step model
    evaluation   metrics and k-fold protocols (no models)
    data         readers, tokenizer, vocabularies, label order, batching, validation
    utils        atomic writes, provenance; errors and _version sit beside them
"""

from seq2labels._version import __version__
from seq2labels.errors import ConfigError, DataFormatError, ModelFormatError, Seq2LabelsError


def __getattr__(name: str):
    # imported lazily so that `import seq2labels` stays cheap (no torch) for the CLI's --help
    if name == "SGMClassifier":
        from seq2labels.apps.estimators import SGMClassifier
        return SGMClassifier
    if name in ("LabelGenerator", "Prediction", "load_model"):
        from seq2labels.pipeline import generator
        return getattr(generator, name)
    if name == "train":
        from seq2labels.pipeline.recipe import train
        return train
    if name == "save_model":
        from seq2labels.pipeline.files import save_model
        return save_model
    raise AttributeError(f"module 'seq2labels' has no attribute {name!r}")


__all__ = ["SGMClassifier", "LabelGenerator", "Prediction", "train", "load_model", "save_model",
           "ConfigError", "DataFormatError", "ModelFormatError", "Seq2LabelsError", "__version__"]
