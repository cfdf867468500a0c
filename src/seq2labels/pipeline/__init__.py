"""The trained SGM and how it is made: generator (LabelGenerator, raw text in, ordered labels out),
recipe and runs (files -> vocabularies -> model -> trainer), config (the run's YAML schema),
files and model_card (the model folder), export, loading and quantize (ONNX, int8, backends).

May import training, models, decoding, evaluation, data and utils; never baselines, experiments or apps.
"""
