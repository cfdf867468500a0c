"""What every result file records: the command, git commit, date, machine and data checksums."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# result files that benchmark runs write into the checkout: a change there is output, not a code change
RESULTS_PATHSPEC = ":(exclude)benchmarks/results"


def git_commit(root: Path = REPO_ROOT) -> str:
    """HEAD of the checkout, with '-dirty' when tracked files other than benchmark results differ from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                RESULTS_PATHSPEC], cwd=root, capture_output=True, text=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    import numpy as np
    import sklearn

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "numpy": np.__version__, "sklearn": sklearn.__version__,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    if "torch" in sys.modules:  # only report torch where the run used it
        import torch
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                    cuda=torch.cuda.is_available(),
                    # the kernels torch picked for this CPU: seeded runs match bit for bit only where it agrees
                    torch_cpu_capability=torch.backends.cpu.get_cpu_capability())
    return info


def provenance(data_files: list[Path], relative_to: Path | None = None) -> dict:
    """Command, git commit, UTC date, machine and ``{path: sha256}`` of the data files."""
    def name(p: Path) -> str:
        p = Path(p)
        return str(p.relative_to(relative_to)) if relative_to is not None and relative_to in p.parents else str(p)

    return {"command": " ".join([Path(sys.executable).name] + sys.argv), "git_commit": git_commit(),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
            "data": {name(p): sha256(p) for p in data_files}}
