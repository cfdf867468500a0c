"""Result files record which CPU kernels torch chose (seeded runs agree bit for bit only where they match)
and whether the code differed from the commit they name."""

import torch  # noqa: F401  (machine() reports torch only once it is imported)

from seq2labels.utils.provenance import machine


def test_machine_names_the_cpu_and_torchs_kernel_level():
    info = machine()
    assert info["cpu"] and info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_only_code_changes_make_a_checkout_dirty(tmp_path):
    import subprocess
    from seq2labels.utils.provenance import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (tmp_path / "benchmarks" / "results" / "r.json").write_text('{"new": 1}')   # a run's output
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "code.py").write_text("x = 2\n")                                 # a code change
    assert git_commit(tmp_path).endswith("-dirty")
