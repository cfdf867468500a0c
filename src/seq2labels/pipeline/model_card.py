"""The model card (README.md of a model folder) and the training-data summary it is built from."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from seq2labels.utils.provenance import sha256


def describe_training_data(cfg, train_examples, valid_examples, n_train: int | None = None) -> dict:
    """Counts and checksums of the data a model was trained on, kept in config.json for the model card.

    ``train_examples`` may be None (streamed training): then only ``n_train`` and the files are known.
    """
    summary: dict = {"files": [_describe_file(role, spec) for role, spec in
                               (("train", cfg.data.train), ("valid", cfg.data.valid), ("test", cfg.data.test)) if spec],
                     "train_docs": len(train_examples) if train_examples is not None else n_train,
                     "valid_docs": len(valid_examples) if valid_examples is not None else None}
    if train_examples is not None:
        counts = Counter(label for ex in train_examples for label in set(ex.labels))
        summary["label_counts"] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        summary["labels_per_doc"] = sum(len(set(ex.labels)) for ex in train_examples) / max(len(train_examples), 1)
    return summary


def _describe_file(role: str, spec: str) -> dict:
    """A data file with its size and sha256 (a glob of shards is named only)."""
    path = Path(spec)
    if not path.is_file():
        return {"role": role, "path": spec}
    return {"role": role, "path": spec, "bytes": path.stat().st_size, "sha256": sha256(path)}


RARE_LABEL_DOCS = 10  # the card counts labels with fewer training documents than this as rare


def model_card(generator, metrics: dict | None) -> str:
    """A README for the model folder: data, labels, model, metrics, intended use and limits."""
    cfg = generator.config
    data = getattr(generator, "data_summary", None) or {}
    lines = ["# seq2labels SGM model", "",
             "A sequence generation model (SGM) for multi-label classification: it reads a text and emits its "
             "labels one by one, each with its probability, until an end token.", ""]
    lines += _card_data(cfg, data, len(generator.vocab))
    lines += _card_labels(cfg, data, generator.label_vocab.labels)
    lines += [
        "## Model", "",
        f"- encoder: {'bidirectional ' if cfg.model.bidirectional else ''}{cfg.model.rnn_type.upper()}, "
        f"{cfg.model.encoder_layers} layer(s) of {cfg.model.encoder_hidden}; self-attention: {cfg.model.self_attention}",
        f"- decoder: LSTM {cfg.model.decoder_hidden}, contextual attention: {cfg.model.attention}, "
        f"global embedding: {cfg.model.global_embedding}",
        f"- loss: {cfg.train.loss}; decoding default: beam {cfg.decode.beam_size}, at most {cfg.decode.max_labels} labels", "",
    ]
    if metrics:
        lines += ["## Metrics", "",
                  "`valid_*`: the validation data at the best epoch (greedy decoding); `test_*`: the test file.", "",
                  "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
        lines.append("")
    lines += _card_use_and_limits(cfg, data, generator)
    return "\n".join(lines)


def _card_data(cfg, data: dict, n_words: int) -> list[str]:
    files = {f["role"]: f for f in data.get("files", [])}
    docs = {"train": data.get("train_docs"), "valid": data.get("valid_docs")}

    def describe(role: str) -> str:
        f = files[role]
        parts = [f"{docs[role]:,} documents trained on" if role == "train" and docs["train"] is not None else
                 f"{docs[role]:,} documents" if docs.get(role) is not None else None,
                 f"sha256 `{f['sha256']}`" if "sha256" in f else None]
        return f"`{f['path']}`" + (f" ({'; '.join(p for p in parts if p)})" if any(parts) else "")

    lines = ["## Training data", ""]
    if "train" in files:
        lines.append(f"- train: {describe('train')}")
    else:
        n = f" ({docs['train']:,} documents)" if docs["train"] is not None else ""
        lines.append(f"- train: in-memory data (Python API){n}")
    if "valid" in files:
        lines.append(f"- validation: {describe('valid')}")
    else:
        n = f"{docs['valid']:,} documents, " if docs["valid"] is not None else ""
        lines.append(f"- validation: {n}{cfg.data.valid_fraction:.0%} of the train file set aside "
                     f"(seeded split, seed {cfg.train.seed})")
    if "test" in files:
        lines.append(f"- test: {describe('test')}")
    if "labels_per_doc" in data:
        lines.append(f"- labels per training document: {data['labels_per_doc']:.2f} on average")
    if getattr(cfg.model, "encoder", "rnn") == "transformer":
        lines += [f"- word pieces in the pretrained vocabulary: {n_words:,}; pieces kept per text: "
                  f"{cfg.text.max_len}", ""]
        return lines
    lines += [f"- words in vocabulary: {n_words:,} (seen at least {cfg.text.min_count} time(s) in train); "
              f"tokens kept per text: {cfg.text.max_len}", ""]
    return lines


def _card_labels(cfg, data: dict, labels: list[str]) -> list[str]:
    lines = ["## Labels", "",
             f"- {len(labels)} labels (all in `labels.json`), taught in `{cfg.labels.order}` order"]
    counts = data.get("label_counts")
    n_train = data.get("train_docs")
    if counts and n_train:
        def show(items):
            return ", ".join(f"`{lab}` ({n:,}, {n / n_train:.1%})" for lab, n in items)
        ranked = list(counts.items())
        lines.append(f"- most frequent in training (documents): {show(ranked[:10])}")
        if len(ranked) > 10:
            lines.append(f"- rarest in training: {show(ranked[-5:])}")
    else:
        lines.append("- " + ", ".join(f"`{lab}`" for lab in labels[:50]) + (" ..." if len(labels) > 50 else ""))
    lines.append("")
    return lines


def _card_use_and_limits(cfg, data: dict, generator) -> list[str]:
    tokenizer = generator.tokenizer
    counts = data.get("label_counts") or {}
    rare = sum(1 for n in counts.values() if n < RARE_LABEL_DOCS)
    lines = [
        "## Intended use", "",
        "- Suggest an ordered list of labels (tags) for texts like the training data, e.g. to pre-fill tags "
        "that a person confirms; `seq2labels predict MODEL --top-k K` or `seq2labels serve MODEL`.",
        "- Not for decisions about people or where an error is costly without human review.", "",
        "## Limits", "",
        f"- Only the {generator.label_vocab.num_labels} labels in `labels.json` can be predicted: a label never "
        "seen in training never comes out, and evaluation counts it as a miss.",
    ]
    if rare:
        lines.append(f"- {rare} label(s) have fewer than {RARE_LABEL_DOCS} training documents; expect them "
                     "to be predicted rarely and unreliably.")
    if getattr(tokenizer, "type_name", "regex") != "regex":
        lines += _card_pretrained_limits(cfg)
    else:
        lines += [
            f"- Texts are cut to their first {cfg.text.max_len} tokens: anything later is not read.",
            f"- Language and domain: those of the training data. The tokenizer splits on the pattern "
            f"`{tokenizer.pattern}`{' after lowercasing' if tokenizer.lowercase else ''}; words outside the "
            f"vocabulary are read as `<unk>`, so text in another language or domain is mostly unknown words.",
        ]
    lines += ["- Probabilities are the decoder's step probabilities, not calibrated confidences.", ""]
    return lines


def _card_pretrained_limits(cfg) -> list[str]:
    """What a transformer encoder reads: its own word pieces, up to text.max_len of them."""
    m = cfg.model
    read = {"head": f"their first {cfg.text.max_len} word pieces",
            "head_tail": f"their first {m.head_tokens} and last {cfg.text.max_len - m.head_tokens} word pieces",
            "windows": f"their first {cfg.text.max_len} word pieces, in windows the encoder reads one at a time"}
    return [f"- Encoder: the pretrained transformer `{m.pretrained}` ({m.encoder_mode}); texts are read as "
            f"{read[m.long_text]}: anything else is not read.",
            "- Language and domain: those of the pretrained model and of the training data."]
