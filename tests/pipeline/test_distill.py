"""``train.distill_from``: teachers' step distributions as soft targets for a student model."""

from __future__ import annotations

import pytest
import torch

from seq2labels.data.dataset import EncodedDataset, collate
from seq2labels.data.labels import EOS_ID, LabelVocab
from seq2labels.errors import ConfigError
from seq2labels.pipeline.config import load_config, teacher_folders
from seq2labels.pipeline.distill import distillation_targets, teacher_step_probs
from seq2labels.pipeline.generator import load_model
from seq2labels.pipeline.recipe import train

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:.*never seen in training:UserWarning")]

SMALL = ["text.min_count=1", "text.max_len=16", "model.embedding_dim=16", "model.encoder_hidden=16",
         "model.decoder_hidden=16", "model.label_embedding_dim=16", "train.batch_size=32", "train.lr=0.003",
         "train.threads=1", "train.progress=false", "train.epochs=2", "train.patience=5"]


@pytest.fixture(scope="module")
def teachers(sample_examples, tmp_path_factory, single_thread):
    """Two small teachers trained on the first 240 sample examples with different seeds."""
    root = tmp_path_factory.mktemp("teachers")
    folders = []
    with single_thread():
        for seed in (0, 1):
            generator, _ = train(load_config(None, [*SMALL, f"train.seed={seed}"]), root / f"run{seed}",
                                 train_examples=sample_examples[0][:240])
            folders.append(str(generator.save(root / f"teacher{seed}")))
    return folders


def test_teacher_probs_are_its_step_distributions_on_the_students_label_ids(teachers, sample_examples):
    teacher = load_model(teachers[0])
    names = list(teacher.label_vocab.labels)
    student = LabelVocab([*reversed(names), "zz_only_in_student"])  # other ids, and a label the teacher lacks
    examples = sample_examples[0][:40]
    targets = [[student.id(label) for label in ex.labels if label in student] for ex in examples]
    table = teacher_step_probs(teacher, [ex.text for ex in examples], targets, student)
    assert table.shape == (40, max(map(len, targets)) + 1, student.size)

    own = teacher.encode_texts([examples[0].text])
    fed = EncodedDataset(own.token_ids, [[teacher.label_vocab.id(label) for label in student.decode(targets[0])]])
    batch = collate(fed, [0])
    with torch.no_grad():
        expected = teacher.model.eval()(batch.src, batch.src_lengths, batch.targets).exp()[0]  # (steps, V_t)
    steps = len(targets[0]) + 1
    for name in names:
        torch.testing.assert_close(table[0, :steps, student.id(name)], expected[:, teacher.label_vocab.id(name)])
    torch.testing.assert_close(table[0, :steps, EOS_ID], expected[:, EOS_ID])
    assert torch.all(table[:, :, student.id("zz_only_in_student")] == 0)
    assert torch.all(table[0, steps:] == 0)                            # past the row's EOS
    valid = table.sum(-1) > 0                                          # (rows, steps)
    torch.testing.assert_close(table.sum(-1)[valid], torch.ones(int(valid.sum())))
    assert valid.sum(1).tolist() == [len(t) + 1 for t in targets]


def test_targets_average_the_teachers(teachers, sample_examples):
    examples = sample_examples[0][:30]
    student = load_model(teachers[0]).label_vocab
    targets = [[student.id(label) for label in ex.labels if label in student] for ex in examples]
    dataset = EncodedDataset([[3]] * 30, targets)  # only the targets are read
    texts = [ex.text for ex in examples]
    mean = distillation_targets(teachers, texts, dataset, student)
    each = [teacher_step_probs(load_model(folder), texts, targets, student) for folder in teachers]
    torch.testing.assert_close(mean.table, (each[0] + each[1]) / 2)
    assert not torch.allclose(each[0], each[1])
    rows = mean(torch.tensor([4, 0]), 2)
    assert rows.shape == (2, 2, student.size) and torch.equal(rows[1], mean.table[0, :2])


def test_distilled_student_trains_reproducibly_and_records_its_teachers(teachers, sample_examples, tmp_path):
    examples = sample_examples[0][240:400]
    overrides = [*SMALL, f"train.distill_from={','.join(teachers)}", "train.distill_weight=0.7"]
    student, result = train(load_config(None, overrides), tmp_path / "a", train_examples=examples)
    again, _ = train(load_config(None, overrides), tmp_path / "b", train_examples=examples)
    plain, _ = train(load_config(None, SMALL), tmp_path / "c", train_examples=examples)
    weights = student.model.state_dict()
    assert all(torch.equal(again.model.state_dict()[k], v) for k, v in weights.items())
    assert any(not torch.equal(plain.model.state_dict()[k], v) for k, v in weights.items())
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in result.history)
    reloaded = load_model(student.save(tmp_path / "saved"))
    assert teacher_folders(reloaded.config) == teachers and reloaded.config.train.distill_weight == 0.7
    assert reloaded.predict(["a short text"])[0] is not None


@pytest.mark.parametrize("overrides, match", [
    (["train.distill_weight=0.3"], r"train\.distill_weight is set but train\.distill_from"),
    (["train.distill_from=a/model,,b/model"], r"train\.distill_from: a comma-separated list"),
    (["train.distill_from=a/model", "train.distill_weight=1.5"], r"train\.distill_weight: must be in \(0, 1\]"),
    (["train.distill_from=a/model", "labels.order=orderfree"], r"labels\.order is 'orderfree'"),
    (["train.distill_from=a/model", "labels.order=learned"], r"labels\.order is 'learned'"),
])
def test_distillation_settings_it_cannot_follow_are_config_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, overrides)


def test_a_teacher_folder_that_is_not_a_model_is_named(sample_examples, tmp_path):
    missing = tmp_path / "no-model"
    with pytest.raises(ConfigError, match=f"train.distill_from: {missing} is not a model folder"):
        train(load_config(None, [*SMALL, f"train.distill_from={missing}"]), tmp_path / "run",
              train_examples=sample_examples[0][:60])
