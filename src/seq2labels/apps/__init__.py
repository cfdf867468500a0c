"""The user-facing apps: cli/ (one module per command), serve (HTTP), report, explain, estimators
(SGMClassifier), demo and predict_files (sharded prediction).

The top layer: it may import every package below it; nothing in the package imports it (the
``seq2labels`` facade's lazy names excepted).
"""
