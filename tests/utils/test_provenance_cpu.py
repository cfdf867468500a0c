"""Result files record which CPU kernels torch chose: seeded runs agree bit for bit only where they match."""

import torch  # noqa: F401  (machine() reports torch only once it is imported)

from seq2labels.utils.provenance import machine


def test_machine_names_the_cpu_and_torchs_kernel_level():
    info = machine()
    assert info["cpu"] and info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
