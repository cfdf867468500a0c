"""``seq2labels demo``: SGM trained and evaluated on the GoEmotions sample the package ships."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from seq2labels.data.readers import read_examples
from seq2labels.data.samples import sample_path
from seq2labels.evaluation.metrics import format_metrics
from seq2labels.pipeline.config import load_config
from seq2labels.pipeline.recipe import train

SHOWN_METRICS = ("micro_f1", "macro_f1", "example_f1", "subset_accuracy", "hamming_loss", "label_position_deviation")


def run_demo(out: str | Path, epochs: int | None = None, quiet: bool = False) -> Iterator[str]:
    """Train on the shipped sample, evaluate greedy and beam 5, save the model and show a few predictions.

    Yields the demo's output a paragraph at a time, as the work proceeds (the command prints it)."""
    overrides = [f"data.train={sample_path('goemotions_train.jsonl.gz')}"]
    if epochs:
        overrides.append(f"train.epochs={epochs}")
    if quiet:
        overrides.append("train.progress=false")
    cfg = load_config(sample_path("demo.yaml"), overrides)
    yield "seq2labels demo: SGM on a 6,000-comment GoEmotions sample (CC BY 4.0, Demszky et al. 2020)"
    generator, result = train(cfg, out)
    test = read_examples(sample_path("goemotions_test.jsonl.gz"))
    for beam in (1, 5):
        metrics = generator.evaluate(test, beam_size=beam)
        yield f"\ntest metrics on {len(test)} held-out comments, beam {beam}:"
        yield format_metrics({k: metrics[k] for k in SHOWN_METRICS})
    generator.save(Path(out) / "model", metrics=metrics)
    yield "\na few predictions (beam 5; labels in generated order with their step probabilities):"
    shown = test[:8]
    for ex, pred in zip(shown, generator.predict([ex.text for ex in shown], beam_size=5)):
        labels = ", ".join(f"{lab} ({p:.2f})" for lab, p in zip(pred.labels, pred.probabilities)) or "(none)"
        yield f"- {ex.text[:80]!r}\n    predicted: {labels}\n    gold:      {', '.join(ex.labels)}"
    yield f"\nmodel saved to {Path(out) / 'model'}; try: seq2labels predict {Path(out) / 'model'} FILE"
