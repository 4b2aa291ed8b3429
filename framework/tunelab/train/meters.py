"""Cost meters: wall time, peak memory, CPU use and estimated energy / CO2e of a block of work."""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class ResourceMeter:
    """Measures wall time, peak and mean process RSS (sampled), CPU time of this process,
    on CUDA peak allocated memory and GPU power, and from these the energy and CO2e.

    RSS is sampled every ``interval`` seconds in a background thread, so the figure is
    the peak of this block, not of the whole process's life. After the block:
    ``cpu_seconds``, ``cpu_percent`` (100 = one core busy), and ``energy``
    (:class:`EnergyReading`; see :func:`estimate_energy`).
    """

    def __init__(self, interval: float = 0.1, energy: EnergySettings | None = None):
        self.interval = interval
        self.settings = energy if energy is not None else EnergySettings()
        self.seconds = 0.0
        self.peak_rss_mb = 0.0
        self.mean_rss_mb = 0.0
        self.peak_gpu_mb: float | None = None
        self.cpu_seconds = 0.0
        self.cpu_percent = 0.0
        self.energy: EnergyReading | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gpu_samples: list[float] = []

    def _gpu_watts_now(self) -> float | None:
        import torch

        try:
            return torch.cuda.power_draw() / 1000.0  # mW, via NVML
        except Exception:  # noqa: BLE001 - no pynvml / unsupported device
            pass
        try:
            return self.settings.gpu_watts * torch.cuda.utilization() / 100.0
        except Exception:  # noqa: BLE001
            return None

    def _sample(self) -> None:
        peak = first = _rss_bytes()
        total, n = first, 1
        while not self._stop.wait(self.interval):
            rss = _rss_bytes()
            peak, total, n = max(peak, rss), total + rss, n + 1
            if self._cuda:
                watts = self._gpu_watts_now()
                if watts is not None:
                    self._gpu_samples.append(watts)
        last = _rss_bytes()
        self.peak_rss_mb = max(peak, last) / 2**20
        self.mean_rss_mb = (total + last) / (n + 1) / 2**20

    def __enter__(self) -> ResourceMeter:
        import psutil
        import torch

        self._cuda = torch.cuda.is_available()
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
        self._process = psutil.Process()
        self._rapl = _rapl_packages() if self.settings.use_rapl else []
        self._rapl_start = _rapl_read(self._rapl) if self._rapl else []
        self._system_start = psutil.cpu_times()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        times = self._process.cpu_times()
        self._cpu_start = times.user + times.system
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        import psutil
        import torch

        self.seconds = time.perf_counter() - self._start
        times = self._process.cpu_times()
        self.cpu_seconds = max(times.user + times.system - self._cpu_start, 0.0)
        self.cpu_percent = 100.0 * self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0
        system_end = psutil.cpu_times()
        rapl_joules = None
        if self._rapl:
            try:
                rapl_joules = _rapl_joules(self._rapl, self._rapl_start, _rapl_read(self._rapl))
            except (OSError, ValueError):
                rapl_joules = None
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        gpu_watts = None
        if self._cuda:
            self.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20
            gpu_watts = (
                sum(self._gpu_samples) / len(self._gpu_samples) if self._gpu_samples else self.settings.gpu_watts
            )
        busy = _busy_seconds(system_end) - _busy_seconds(self._system_start)
        share = self.cpu_seconds / busy if busy > 0 else 1.0
        self.energy = estimate_energy(
            self.settings, self.seconds, self.cpu_seconds, self.mean_rss_mb / 1024, rapl_joules, share, gpu_watts
        )


def _busy_seconds(times: Any) -> float:
    """CPU seconds the whole machine spent busy (all but idle and iowait)."""
    return sum(times) - getattr(times, "idle", 0.0) - getattr(times, "iowait", 0.0)


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


# --- energy and CO2 ---------------------------------------------------------------------
#
# An offline estimate in the manner of the Green Algorithms calculator (Lannelongue, Grealey
# & Inouye, "Green Algorithms: Quantifying the Carbon Footprint of Computation", Adv. Sci.
# 2021) and of codecarbon's methodology (https://mlco2.github.io/codecarbon/methodology.html):
#
#     energy = (CPU power + GPU power + memory power) × time
#     CO2e   = energy × carbon intensity of the grid
#
# CPU: measured with RAPL (/sys/class/powercap/intel-rapl:*/energy_uj, the package
# counters) when readable, scaled by this process's share of the machine's busy CPU time;
# otherwise estimated as ``cpu_watts_per_core`` × CPU-seconds of this process (psutil).
# GPU (CUDA only): mean sampled power draw (``torch.cuda.power_draw``, NVML) when
# available, else ``gpu_watts`` × mean utilisation, else ``gpu_watts`` (the TDP) ×
# time. Memory: 0.375 W per GB of resident memory (Green Algorithms; codecarbon uses the
# same 3 W per 8 GB).

#: W per GB of RAM (Green Algorithms 2021; codecarbon: 3 W / 8 GB)
MEMORY_WATTS_PER_GB = 0.375
#: W per busy CPU core when RAPL cannot be read. Green Algorithms' per-core TDP figures for
#: server CPUs are mostly 10-15 W (e.g. Xeon Gold 6148: 150 W / 20 cores = 7.5 W; EPYC 7702:
#: 200 W / 64 = 3.1 W; Core i7-10700: 65 W / 8 = 8.1 W, desktop parts up to ~16 W); 10 W is a
#: round middle value. Override with train.cpu_watts_per_core.
DEFAULT_CPU_WATTS_PER_CORE = 10.0
#: W of a GPU at full load when NVML power readings are unavailable (override train.gpu_watts)
DEFAULT_GPU_WATTS = 300.0

#: Carbon intensity of electricity generation, g CO2e per kWh, year 2023, rounded.
#: Source: Ember, "Yearly electricity data" (2024 release), as published by Our World in
#: Data ("Carbon intensity of electricity generation", ourworldindata.org/grapher/
#: carbon-intensity-electricity). Lifecycle emissions; national averages (not marginal).
#: The figures were transcribed without network access to the source: check them against
#: the current release before relying on them for reporting.
CARBON_INTENSITY_G_PER_KWH: dict[str, float] = {
    "world": 481,
    "australia": 549,
    "brazil": 98,
    "canada": 171,
    "china": 582,
    "eu": 244,
    "france": 56,
    "germany": 381,
    "india": 713,
    "indonesia": 676,
    "italy": 331,
    "japan": 485,
    "mexico": 423,
    "netherlands": 268,
    "norway": 30,
    "poland": 662,
    "south_africa": 708,
    "south_korea": 432,
    "spain": 174,
    "sweden": 41,
    "uk": 238,
    "usa": 369,
}


def carbon_intensity(country: str) -> float:
    """g CO2e per kWh of ``country`` (a key of :data:`CARBON_INTENSITY_G_PER_KWH`, any case,
    spaces or dashes for underscores)."""
    key = country.strip().lower().replace(" ", "_").replace("-", "_")
    try:
        return float(CARBON_INTENSITY_G_PER_KWH[key])
    except KeyError:
        valid = ", ".join(sorted(CARBON_INTENSITY_G_PER_KWH))
        raise ValueError(f"country: unknown grid {country!r}; choose one of: {valid}") from None


@dataclass
class EnergySettings:
    """Inputs of the energy estimate: the grid and the power figures used when nothing is measured."""

    #: grid whose carbon intensity converts kWh to CO2e (see CARBON_INTENSITY_G_PER_KWH)
    country: str = "world"
    #: W per busy CPU core, used when RAPL counters cannot be read
    cpu_watts_per_core: float = DEFAULT_CPU_WATTS_PER_CORE
    #: W of a GPU at full load, used when NVML power readings are unavailable
    gpu_watts: float = DEFAULT_GPU_WATTS
    #: read RAPL counters when available (False: always estimate)
    use_rapl: bool = True

    def __post_init__(self) -> None:
        self.intensity = carbon_intensity(self.country)
        for name in ("cpu_watts_per_core", "gpu_watts"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")

    @classmethod
    def from_train_settings(cls, settings: Any) -> EnergySettings:
        """From the run's ``train`` section (country, cpu_watts_per_core, gpu_watts)."""
        return cls(
            country=settings.country, cpu_watts_per_core=settings.cpu_watts_per_core, gpu_watts=settings.gpu_watts
        )


RAPL_ROOT = Path("/sys/class/powercap")


def _rapl_packages(root: Path = RAPL_ROOT) -> list[Path]:
    """Readable RAPL package counters (``intel-rapl:N``, not their sub-domains)."""
    found = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:
            continue
        try:
            int((zone / "energy_uj").read_text())
            found.append(zone)
        except (OSError, ValueError):
            continue
    return found


def _rapl_read(zones: list[Path]) -> list[int]:
    return [int((z / "energy_uj").read_text()) for z in zones]


def _rapl_joules(zones: list[Path], start: list[int], end: list[int]) -> float:
    total = 0
    for zone, a, b in zip(zones, start, end):
        if b < a:  # the counter wrapped around
            try:
                b += int((zone / "max_energy_range_uj").read_text())
            except (OSError, ValueError):
                continue
        total += b - a
    return total / 1e6


@dataclass
class EnergyReading:
    """Energy of one measured block and what it is made of."""

    kwh: float
    co2_g: float
    #: "rapl" (CPU energy measured) or "estimate" (from cpu_watts_per_core)
    source: str
    cpu_kwh: float
    memory_kwh: float
    gpu_kwh: float


def estimate_energy(
    settings: EnergySettings,
    seconds: float,
    cpu_seconds: float,
    mean_rss_gb: float,
    rapl_joules: float | None = None,
    process_share: float = 1.0,
    gpu_watts: float | None = None,
) -> EnergyReading:
    """Energy and CO2e of a block of ``seconds`` wall time in which this process used
    ``cpu_seconds`` of CPU. ``rapl_joules``: measured package energy (the machine's),
    attributed to this process by ``process_share``. ``gpu_watts``: mean GPU power."""
    if rapl_joules is not None:
        cpu_j, source = rapl_joules * min(max(process_share, 0.0), 1.0), "rapl"
    else:
        cpu_j, source = cpu_seconds * settings.cpu_watts_per_core, "estimate"
    memory_j = mean_rss_gb * MEMORY_WATTS_PER_GB * seconds
    gpu_j = (gpu_watts or 0.0) * seconds
    to_kwh = 1 / 3.6e6
    kwh = (cpu_j + memory_j + gpu_j) * to_kwh
    return EnergyReading(kwh, kwh * settings.intensity, source, cpu_j * to_kwh, memory_j * to_kwh, gpu_j * to_kwh)
