"""Cost meters: CPU time, the energy / CO2e estimate and the grid carbon-intensity table."""

from __future__ import annotations

import time

import pytest

from tunelab.train.meters import (
    CARBON_INTENSITY_G_PER_KWH,
    MEMORY_WATTS_PER_GB,
    EnergySettings,
    ResourceMeter,
    _rapl_joules,
    _rapl_packages,
    carbon_intensity,
    estimate_energy,
)


def busy(seconds: float) -> int:
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def measure(seconds: float, settings: EnergySettings) -> ResourceMeter:
    with ResourceMeter(interval=0.05, energy=settings) as meter:
        busy(seconds)
    return meter


def test_busy_loop_energy_is_positive_and_grows_with_time():
    settings = EnergySettings(country="world", use_rapl=False)
    short, long = measure(0.3, settings), measure(0.9, settings)
    for meter in (short, long):
        assert meter.energy.source == "estimate"
        assert meter.energy.kwh > 0 and meter.energy.co2_g > 0
        # one busy thread: between half a core and (this thread + sampler + noise) ~1.5 cores
        assert 40 < meter.cpu_percent < 150
        assert meter.energy.co2_g == pytest.approx(meter.energy.kwh * 481)
    ratio = long.energy.kwh / short.energy.kwh
    assert 2.0 < ratio < 4.5  # ~3x the time → ~3x the energy (shared CPU: generous bounds)


def test_estimate_is_cpu_seconds_times_watts_plus_memory():
    settings = EnergySettings(country="france", cpu_watts_per_core=12.0)
    reading = estimate_energy(settings, seconds=3600, cpu_seconds=1800, mean_rss_gb=8)
    # 0.5 h × 12 W + 8 GB × 0.375 W × 1 h = 6 Wh + 3 Wh
    assert reading.cpu_kwh == pytest.approx(0.006)
    assert reading.memory_kwh == pytest.approx(8 * MEMORY_WATTS_PER_GB / 1000)
    assert reading.kwh == pytest.approx(0.009)
    assert reading.co2_g == pytest.approx(0.009 * 56)
    # measured RAPL package energy replaces the CPU estimate, attributed by the process share
    measured = estimate_energy(settings, 3600, 1800, 8, rapl_joules=72_000, process_share=0.5)
    assert measured.source == "rapl" and measured.cpu_kwh == pytest.approx(0.01)
    # a GPU at 300 W for an hour adds 0.3 kWh
    assert estimate_energy(settings, 3600, 0, 0, gpu_watts=300).gpu_kwh == pytest.approx(0.3)


def test_rapl_counters_are_read_and_wraparound_handled(tmp_path):
    for zone, value in (("intel-rapl:0", "1000000"), ("intel-rapl:0:0", "5"), ("intel-rapl:1", "bad")):
        (tmp_path / zone).mkdir()
        (tmp_path / zone / "energy_uj").write_text(value)
    (tmp_path / "intel-rapl:0" / "max_energy_range_uj").write_text("10000000")
    zones = _rapl_packages(tmp_path)
    assert [z.name for z in zones] == ["intel-rapl:0"]  # sub-domain and unreadable skipped
    assert _rapl_joules(zones, [9_000_000], [1_000_000]) == pytest.approx(2.0)


def test_country_lookup_and_unknown_country_lists_valid_ones(monkeypatch):
    assert len(CARBON_INTENSITY_G_PER_KWH) >= 20
    assert carbon_intensity("World") == 481
    assert carbon_intensity("south-africa") == carbon_intensity("South Africa") == 708
    assert carbon_intensity("sweden") < carbon_intensity("usa") < carbon_intensity("india")
    with pytest.raises(ValueError, match="unknown grid 'atlantis'.*france.*world"):
        EnergySettings(country="atlantis")
    with pytest.raises(ValueError, match="cpu_watts_per_core"):
        EnergySettings(cpu_watts_per_core=-1)
    from tunelab.api import TrainSettings

    settings = EnergySettings.from_train_settings(TrainSettings(country="norway", cpu_watts_per_core=4.5))
    assert settings.intensity == 30 and settings.cpu_watts_per_core == 4.5
