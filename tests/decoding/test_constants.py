"""decoding keeps its own copy of the special ids; it must agree with the label vocabulary."""

import pytest

from seq2labels.decoding import search


def test_special_ids_match_the_label_vocabulary() -> None:
    labels = pytest.importorskip("seq2labels.data.labels")
    assert (search.PAD_ID, search.BOS_ID, search.EOS_ID) == (labels.PAD_ID, labels.BOS_ID, labels.EOS_ID)
    assert search.FIRST_LABEL_ID == getattr(labels, "N_SPECIAL", 3)
