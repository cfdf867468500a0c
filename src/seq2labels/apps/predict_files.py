"""Predict many input files with several processes and one output in input order.

``seq2labels predict MODEL A B C --output OUT.jsonl [--processes N]`` or the same under
``torchrun --nproc-per-node N``. The texts of all inputs form one stream (file order, then
line order) cut into chunks of ``--chunk-size`` texts (fewer when their characters reach
``data.inputs.CHUNK_CHARS``, as in the single-file path); chunk ``k`` goes to process ``k % N``, so
the work is balanced however the files differ in size. Each process writes its predictions
to a temporary part file; every process sees every chunk's length, so the parts are then
interleaved back chunk by chunk into the output, which appears atomically (complete, or not
at all).

Every process reads every input (skipping other processes' chunks costs a parse, not a
prediction) and loads its own copy of the model: one GPU each (``cuda:LOCAL_RANK`` under
torchrun, round robin with ``--processes``), or ``threads`` CPU threads each.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TextIO

from seq2labels.data.inputs import iter_input_texts, take_chunk
from seq2labels.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

__all__ = ["PredictJob", "merge_parts", "predict_files", "predict_part", "predict_stream"]


@dataclass(frozen=True)
class PredictJob:
    """Everything a worker process needs (plain data, so it pickles for spawned workers)."""

    model: str
    inputs: tuple[str, ...]
    format: str | None = None
    encoding_errors: str = "strict"
    top_k: int | None = None
    beam_size: int | None = None
    min_labels: int | None = None
    batch_size: int = 256
    chunk_size: int = 4096
    device: str = "cpu"
    backend: str = "torch"               # the inference options of single-file predict
    quantize: str | None = None
    precision: str | None = None
    extra_models: tuple[str, ...] = ()   # more model folders: decoded with ``model`` as one ensemble
    thresholds: bool = True              # apply the model folder's thresholds.json


def _check_job(job: PredictJob) -> None:
    if job.chunk_size < 1:
        raise ConfigError(f"--chunk-size must be >= 1, got {job.chunk_size}")
    if job.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {job.batch_size}")
    for path in job.inputs:
        if not Path(path).is_file():
            raise DataFormatError("file not found" if not Path(path).exists() else "not a file", path=path)


# ------------------------------------------------------------------------------- one input, one process

def predict_stream(generator, job: PredictJob, output: str | None) -> int:
    """Predict the job's single input chunk by chunk into ``output`` (default stdout) as JSON Lines;
    returns the number of texts. Memory stays bounded by the chunk, however long the input."""
    texts = _iter_items(generator, job.inputs[0], job)
    out = open(output, "w", encoding="utf-8") if output else sys.stdout
    count = 0
    try:
        while chunk := take_chunk(texts, job.chunk_size):
            predictions = _predict_chunk(generator, chunk, job)
            out.write("".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in predictions))
            count += len(predictions)
    finally:
        if out is not sys.stdout:
            out.close()
    return count


# ------------------------------------------------------------------------------- one part

def _iter_items(generator, path: str, job: PredictJob) -> Iterator:
    """What to predict from one input: texts, or examples with images / features for such a model."""
    if generator is not None and getattr(generator, "uses_inputs", False):
        from seq2labels.data.images import iter_multimodal_examples
        from seq2labels.pipeline.multimodal import image_spec
        cfg = generator.config
        return iter_multimodal_examples(path, image_spec(cfg), allow_outside=cfg.image.allow_outside,
                                        encoding_errors=job.encoding_errors)
    return iter_input_texts(path, job.format, job.encoding_errors)


def _predict_chunk(generator, chunk: list, job: PredictJob) -> list:
    decode = dict(beam_size=job.beam_size, max_labels=job.top_k, min_labels=job.min_labels, batch_size=job.batch_size)
    if getattr(generator, "uses_inputs", False):
        return generator.predict_examples(chunk, **decode)
    return generator.predict(chunk, **decode)


def iter_job_chunks(job: PredictJob, generator=None) -> Iterator[list[str]]:
    """The texts (or examples, for an image model) of all inputs, in order, in the single-file
    path's chunks; a chunk may span two files."""
    def texts() -> Iterator[str]:
        for path in job.inputs:
            yield from _iter_items(generator, path, job)

    stream = texts()
    while chunk := take_chunk(stream, job.chunk_size):
        yield chunk


def predict_part(job: PredictJob, part: int, parts: int, out: TextIO,
                 device: str | None = None) -> tuple[int, list[int]]:
    """Predict chunks ``part, part + parts, ...`` of the job into ``out``.

    Returns the texts predicted and the length of every chunk of the job (this part's and
    the others'), which is what the merge needs to put the parts back in order.
    """
    from seq2labels.pipeline.loading import load_models_for_inference

    generator = load_models_for_inference([job.model, *job.extra_models], device=device or job.device,
                                          backend=job.backend, quantize=job.quantize, precision=job.precision,
                                          thresholds=job.thresholds)
    count, lengths = 0, []
    for k, chunk in enumerate(iter_job_chunks(job, generator)):
        lengths.append(len(chunk))
        if k % parts != part:
            continue
        predictions = _predict_chunk(generator, chunk, job)
        out.write("".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in predictions))
        count += len(predictions)
    return count, lengths


def _part_path(folder: Path, part: int, parts: int) -> Path:
    return folder / f"part-{part:05d}-of-{parts:05d}.jsonl"


def _predict_part_file(job: PredictJob, part: int, parts: int, folder: Path, device: str,
                       threads: int | None = None) -> tuple[int, list[int]]:
    """A worker's whole job: its share of the chunks into its own part file."""
    if threads is not None:
        import torch
        torch.set_num_threads(threads)
    with open(_part_path(folder, part, parts), "w", encoding="utf-8") as out:
        return predict_part(job, part, parts, out, device=device)


# ---------------------------------------------------------------------------------- merge

def merge_parts(part_files: Sequence[Path], chunk_lengths: Sequence[int], out: TextIO) -> int:
    """Interleave part files back into input order: chunk ``k`` (``chunk_lengths[k]`` lines) is
    the next chunk of part ``k % len(part_files)``. A part too short or with lines left over
    means the parts do not fit together: an error, never a silently reordered output.
    """
    handles = [open(path, encoding="utf-8") for path in part_files]  # noqa: SIM115 - closed below
    written = 0
    try:
        for k, length in enumerate(chunk_lengths):
            lines = list(islice(handles[k % len(handles)], length))
            if len(lines) != length:
                raise RuntimeError(f"part files do not interleave: {part_files[k % len(handles)]} ends inside "
                                   f"chunk {k}")
            out.writelines(lines)
            written += length
        leftover = [str(path) for path, handle in zip(part_files, handles) if handle.readline()]
        if leftover:
            raise RuntimeError(f"part files do not interleave: lines left in {', '.join(leftover)}")
    finally:
        for handle in handles:
            handle.close()
    return written


def _write_merged(part_files: Sequence[Path], results: Sequence[tuple[int, list[int]]], output: str | None) -> int:
    """Check the workers agree on the chunks, then merge into ``output`` atomically, or onto stdout."""
    lengths = results[0][1]
    if any(other != lengths for _, other in results[1:]):
        raise RuntimeError("the workers read different chunks from the same inputs; were they changed meanwhile?")
    if output is None:
        written = merge_parts(part_files, lengths, sys.stdout)
    else:
        from seq2labels.utils.atomic import atomic_path

        with atomic_path(output) as tmp:
            with open(tmp, "w", encoding="utf-8") as out:
                written = merge_parts(part_files, lengths, out)
    _check_count(written, sum(count for count, _ in results))
    return written


def _parts_folder(output: str | None) -> Path:
    """A private folder for the part files: beside the output (same file system), else in TMPDIR."""
    parent = Path(output).resolve().parent if output is not None else None
    return Path(tempfile.mkdtemp(prefix=".seq2labels-predict-", dir=parent))


# ------------------------------------------------------------------------------- drivers

def predict_files(job: PredictJob, output: str | None, processes: int = 1) -> int:
    """Predict every input of ``job`` into ``output`` (None: stdout) with ``processes`` workers,
    or with the torchrun processes when launched by torchrun. Returns the texts predicted
    (on every process under torchrun; rank 0 wrote them)."""
    from seq2labels.training import distributed

    _check_job(job)
    if processes < 1:
        raise ConfigError(f"--processes must be >= 1, got {processes}")
    if distributed.launched_by_torchrun():
        if processes > 1:
            raise ConfigError("--processes and torchrun both start processes; use one of them")
        return _predict_torchrun(job, output)
    if processes == 1:
        return _predict_single(job, output)
    return _predict_pool(job, output, processes)


def _predict_single(job: PredictJob, output: str | None) -> int:
    """One process, several files: straight through, no parts."""
    if output is None:
        return predict_part(job, 0, 1, sys.stdout)[0]
    from seq2labels.utils.atomic import atomic_path

    with atomic_path(output) as tmp:
        with open(tmp, "w", encoding="utf-8") as out:
            return predict_part(job, 0, 1, out)[0]


def _worker_device(device: str, part: int) -> str:
    """Spread ``--processes`` workers over the visible GPUs; CPU stays CPU."""
    import torch

    parsed = torch.device(device)
    if parsed.type != "cuda" or parsed.index is not None or not torch.cuda.is_available():
        return device
    return f"cuda:{part % torch.cuda.device_count()}"


def _predict_pool(job: PredictJob, output: str | None, processes: int) -> int:
    """``--processes N``: spawned workers (safe with CUDA), each with 1/N of the CPU threads."""
    import torch
    import torch.multiprocessing as mp

    threads = max(1, torch.get_num_threads() // processes)
    folder = _parts_folder(output)
    try:
        context = mp.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            futures = [pool.submit(_predict_part_file, job, part, processes, folder,
                                   _worker_device(job.device, part), threads) for part in range(processes)]
            results = _results(futures, pool)
        parts = [_part_path(folder, part, processes) for part in range(processes)]
        return _write_merged(parts, results, output)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _results(futures: list[concurrent.futures.Future], pool: concurrent.futures.Executor) -> list:
    """Each worker's count; the first failure cancels what has not started and is re-raised."""
    try:
        return [future.result() for future in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise


def _predict_torchrun(job: PredictJob, output: str | None) -> int:
    """Each torchrun process predicts its chunks; rank 0 merges once all parts are written."""
    from seq2labels.training import distributed

    # gloo: the ranks only wait for each other and share a folder name, whatever the device.
    with distributed.session(job.device, backend="gloo"):
        rank, world = distributed.rank(), distributed.world_size()
        folder = Path(distributed.broadcast_object(str(_parts_folder(output)) if rank == 0 else None))
        try:
            result = _predict_part_file(job, rank, world, folder, distributed.local_device(job.device))
            results = distributed.all_gather_object(result)
            if rank == 0:
                _write_merged([_part_path(folder, p, world) for p in range(world)], results, output)
            distributed.barrier()
        finally:
            if rank == 0:
                shutil.rmtree(folder, ignore_errors=True)
    return sum(count for count, _ in results)


def _check_count(written: int, predicted: int) -> None:
    if written != predicted:
        raise RuntimeError(f"merged {written} predictions but the workers made {predicted}")
