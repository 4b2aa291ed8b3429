"""Cost meters: wall time and peak memory of a block of work."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def _rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class ResourceMeter:
    """Measures wall time, peak process RSS (sampled) and, on CUDA, peak allocated memory.

    RSS is sampled every ``interval`` seconds in a background thread, so the figure is
    the peak of this block, not of the whole process's life.
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.seconds = 0.0
        self.peak_rss_mb = 0.0
        self.peak_gpu_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        peak = _rss_bytes()
        while not self._stop.wait(self.interval):
            peak = max(peak, _rss_bytes())
        self.peak_rss_mb = max(peak, _rss_bytes()) / 2**20

    def __enter__(self) -> "ResourceMeter":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        self.seconds = time.perf_counter() - self._start
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        if torch.cuda.is_available():
            self.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts of a model (PEFT wrappers included)."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if hasattr(param, "ds_numel"):
            n = param.ds_numel
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total
