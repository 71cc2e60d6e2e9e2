"""analyze_ecg on short real excerpts (tests/data/ecg, see tests/data/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from telemetry.analysis import EcgFeatures, af_features, analyze_ecg
from telemetry.ecg import af, delineate, vf

DATA = Path(__file__).parent / "data" / "ecg"


def excerpt(name: str) -> tuple[np.ndarray, float, dict]:
    with np.load(DATA / f"{name}.npz") as npz:
        fields = {key: npz[key] for key in npz.files}
    return fields["adc"] / fields["gain"], float(fields["fs"]), fields


def sensitivity_and_ppv(reference: np.ndarray, found: np.ndarray, fs: float):
    distance = np.abs(found[:, None] - reference[None, :])
    hits = int((distance.min(axis=0) <= 0.15 * fs).sum())
    return hits / len(reference), hits / len(found)


def silenced(signal: np.ndarray, fs: float, start_s: float, seconds: float):
    """A copy with a stretch replaced by a quiet baseline (beats dropped)."""
    copy = signal.copy()
    a, b = int(start_s * fs), int((start_s + seconds) * fs)
    copy[a:b] = np.median(signal) + np.random.default_rng(1).normal(0, 0.005, b - a)
    return copy


@pytest.fixture(scope="module")
def sinus() -> tuple[np.ndarray, float, dict]:
    return excerpt("mitdb_115_sinus")


def test_it_calls_a_minute_of_normal_sinus_rhythm_sinus(sinus):
    signal, fs, _ = sinus
    features = analyze_ecg(signal, fs)
    assert features.rhythm == "sinus"
    assert features.usable
    assert features.quality > 0.8
    assert 55 < features.heart_rate_bpm < 75


def test_it_calls_atrial_fibrillation_af():
    signal, fs, _ = excerpt("mitdb_201_af")
    features = analyze_ecg(signal, fs)
    assert features.rhythm == "af"
    assert features.pr_ms is None


def test_it_calls_ventricular_bigeminy_irregular_rather_than_af():
    signal, fs, _ = excerpt("mitdb_119_bigeminy")
    assert analyze_ecg(signal, fs).rhythm == "irregular"


def test_it_calls_a_sustained_rate_over_100_tachycardia():
    signal, fs, _ = excerpt("mitdb_215_tachycardia")
    features = analyze_ecg(signal, fs)
    assert features.rhythm == "tachycardia"
    assert features.heart_rate_bpm > 100


def test_it_calls_sinus_bradycardia_bradycardia():
    signal, fs, _ = excerpt("ludb_1_ii")
    features = analyze_ecg(signal, fs)
    assert features.rhythm == "bradycardia"
    assert features.heart_rate_bpm < 50


def test_it_calls_a_dropped_beat_a_pause(sinus):
    signal, fs, _ = sinus
    features = analyze_ecg(silenced(signal, fs, 20.5, 1.8), fs)
    assert features.rhythm == "pause"


def test_it_calls_five_seconds_without_a_beat_asystole(sinus):
    signal, fs, _ = sinus
    assert analyze_ecg(silenced(signal[: int(20 * fs)], fs, 8, 5), fs).rhythm == (
        "asystole"
    )


def test_it_calls_a_flat_line_asystole_not_noise():
    flat = np.random.default_rng(0).normal(0, 0.005, 2500)
    features = analyze_ecg(flat, 250.0)
    assert features.rhythm == "asystole"
    assert len(features.r_peaks) == 0
    assert features.heart_rate_bpm is None


def test_it_calls_ventricular_flutter_vf_and_counts_no_flutter_wave_as_a_beat():
    # MIT-BIH 207: bundle-branch beats and PVCs for 10.5 s, then flutter (the
    # annotators mark no beats in it) to the end of the excerpt.
    signal, fs, fields = excerpt("mitdb_207_flutter")
    features = analyze_ecg(signal, fs)
    assert features.rhythm == "vf"
    stretches = vf.stretches(signal, fs)
    assert stretches
    # Found inside the flutter (from 10.5 s), within 20 s of its start: its first
    # seconds run at 180/min or slower, under the VF rate floor.
    assert fields["beats"][-1] <= stretches[0].start <= 30.5 * fs
    inside = [p for p in features.r_peaks for s in stretches if s.start <= p < s.stop]
    assert inside == []


@pytest.mark.parametrize(
    "name",
    [
        "mitdb_115_sinus",
        "mitdb_201_af",
        "mitdb_119_bigeminy",
        "mitdb_215_tachycardia",
        "nstdb_118e00_noise_onset",
        "ludb_1_ii",
    ],
)
def test_no_other_excerpt_has_a_vf_stretch(name):
    signal, fs, _ = excerpt(name)
    assert vf.stretches(signal, fs) == []


def test_a_sinusoid_meets_both_vf_criteria_and_a_qrs_train_meets_neither():
    fs = 250.0
    t = np.arange(int(4 * fs)) / fs
    sine = np.sin(2 * np.pi * 4.0 * t)
    assert vf.leakage(sine) < vf.LEAKAGE_MAX
    peak, moment, share = vf.spectral(sine, fs)
    assert peak == 4.0
    assert moment <= vf.MOMENT_MAX
    assert share >= vf.A2_MIN
    assert vf.rate_hz(sine, fs) == 4.0
    # Narrow 1 mV spikes at 75/min on a flat baseline: a pulse train, many harmonics.
    spikes = np.exp(-(((t[:, None] - np.arange(0.4, 4, 0.8)) / 0.012) ** 2)).sum(axis=1)
    assert vf.leakage(spikes - spikes.mean()) >= vf.LEAKAGE_MAX
    assert vf.rate_hz(spikes, fs) == 0.0


def test_it_calls_electrode_motion_at_0_db_noise_rather_than_an_arrhythmia():
    signal, fs, _ = excerpt("nstdb_118e00_noise_onset")
    noisy = analyze_ecg(signal[int(30 * fs) :], fs)
    assert noisy.rhythm == "noise"
    assert not noisy.usable


def test_it_keeps_the_clean_stretch_before_the_noise_usable():
    signal, fs, _ = excerpt("nstdb_118e00_noise_onset")
    clean = analyze_ecg(signal[: int(20 * fs)], fs)
    assert clean.usable
    assert clean.rhythm != "noise"


def test_it_reports_nothing_it_cannot_measure_on_noise():
    signal, fs, _ = excerpt("nstdb_118e00_noise_onset")
    noisy = analyze_ecg(signal[int(30 * fs) :], fs)
    assert noisy.qrs_ms is noisy.qt_ms is noisy.qtc_ms is noisy.sdnn_ms is None


@pytest.mark.parametrize("name", ["mitdb_115_sinus", "mitdb_201_af"])
def test_its_r_peaks_match_the_cardiologists_beat_annotations(name):
    signal, fs, fields = excerpt(name)
    se, ppv = sensitivity_and_ppv(fields["beats"], analyze_ecg(signal, fs).r_peaks, fs)
    assert se >= 0.99
    assert ppv >= 0.99


def test_it_gives_hrv_only_for_a_minute_or_more(sinus):
    signal, fs, _ = sinus
    minute = analyze_ecg(signal, fs)
    half = analyze_ecg(signal[: int(30 * fs)], fs)
    assert 5 < minute.sdnn_ms < 200
    assert 5 < minute.rmssd_ms < 200
    assert 0 <= minute.pnn50 <= 100
    assert half.sdnn_ms is half.rmssd_ms is half.pnn50 is None


def test_its_qrs_and_qt_are_close_to_the_ludb_annotations():
    signal, fs, fields = excerpt("ludb_1_ii")
    marks, symbols = fields["marks"], list(fields["symbols"])
    qrs, qt = [], []
    for i, symbol in enumerate(symbols[1:-1], start=1):
        if symbol == "N":
            qrs.append(marks[i + 1] - marks[i - 1])
            if i + 4 < len(symbols) and symbols[i + 3] == "t":
                qt.append(marks[i + 4] - marks[i - 1])
    features = analyze_ecg(signal, fs)
    assert abs(features.qrs_ms - np.median(qrs) * 1000 / fs) <= 15
    assert abs(features.qt_ms - np.median(qt) * 1000 / fs) <= 25


def test_its_qtc_follows_bazett_and_fridericia_at_a_slow_rate():
    signal, fs, _ = excerpt("ludb_1_ii")
    features = analyze_ecg(signal, fs)
    assert features.qtc_ms == features.qtc_bazett_ms
    assert features.qtc_bazett_ms < features.qtc_fridericia_ms < features.qt_ms


def test_it_bridges_a_short_nan_gap_instead_of_losing_every_beat(sinus):
    signal, fs, _ = sinus
    gappy = signal[: int(20 * fs)].copy()
    gappy[int(10 * fs) : int(10.2 * fs)] = np.nan
    features = analyze_ecg(gappy, fs)
    assert len(features.r_peaks) > 15
    assert features.usable


def test_it_calls_a_mostly_missing_signal_noise(sinus):
    signal, fs, _ = sinus
    gappy = signal[: int(20 * fs)].copy()
    gappy[int(2 * fs) : int(18 * fs)] = np.nan
    assert analyze_ecg(gappy, fs).rhythm == "noise"


@pytest.mark.parametrize(
    ("samples", "fs", "message"),
    [
        (np.zeros(1000), 250.0, "5 s"),
        (np.zeros(3000), 0.0, "fs"),
        (np.zeros(3000), float("nan"), "fs"),
        (np.zeros(3000), 50.0, "fs"),
        (np.zeros((3000, 2)), 250.0, "1-D"),
        (np.full(3000, np.nan), 250.0, "finite"),
        (np.zeros(250 * 60 * 40), 250.0, "min"),
    ],
)
def test_it_rejects_input_it_cannot_analyse_with_a_clear_message(samples, fs, message):
    with pytest.raises(ValueError, match=message):
        analyze_ecg(samples, fs)


def test_its_dict_is_json_safe_and_leaves_the_peaks_out_unless_asked(sinus):
    signal, fs, _ = sinus
    features = analyze_ecg(signal[: int(10 * fs)], fs)
    plain = json.loads(json.dumps(features.to_dict()))
    with_peaks = json.loads(json.dumps(features.to_dict(include_peaks=True)))
    assert "r_peaks" not in plain
    assert with_peaks["r_peaks"] == features.r_peaks.tolist()
    assert plain["rhythm"] == "sinus"
    assert plain["qtc_ms"] == plain["qtc_bazett_ms"]
    assert plain["sdnn_ms"] is None


def test_its_features_are_immutable(sinus):
    signal, fs, _ = sinus
    features = analyze_ecg(signal[: int(10 * fs)], fs)
    assert isinstance(features, EcgFeatures)
    with pytest.raises(AttributeError):
        features.rhythm = "af"


def test_its_af_model_artefact_names_exactly_the_features_it_is_given(sinus):
    signal, fs, _ = sinus
    values = af_features(signal, fs)
    fitted = af.model()
    assert set(fitted.names) == set(values)
    assert len(fitted.coef) == len(fitted.mean) == len(fitted.scale) == len(values)
    assert np.all(fitted.scale > 0)
    assert 0 < fitted.threshold < 1


def test_its_af_probability_separates_fibrillation_from_sinus(sinus):
    signal, fs, _ = sinus
    af_signal, af_fs, _ = excerpt("mitdb_201_af")
    fitted = af.model()
    in_af = fitted.probability(af_features(af_signal, af_fs))
    in_sinus = fitted.probability(af_features(signal, fs))
    assert in_af >= fitted.threshold > in_sinus
    assert in_sinus < 0.1


def test_it_gives_no_af_features_for_an_unusable_recording():
    signal, fs, _ = excerpt("nstdb_118e00_noise_onset")
    assert af_features(signal[int(30 * fs) :], fs) is None


def test_its_t_wave_ends_where_a_ramp_down_reaches_the_baseline():
    fs, r, offset = 500.0, 175, 200
    beat = np.zeros(600)
    beat[r] = 1.0
    beat[300:350] = np.linspace(0, 0.3, 50)  # T wave up to its peak at 350
    beat[350:400] = np.linspace(0.3, 0, 50)  # and down to the baseline at 400
    end = delineate.t_end(beat, r, offset, 0.0, fs, 1.0)
    assert end is not None
    assert abs(end - 400) <= 0.01 * fs


def _wide_flat_complex(fs: float, width_s: float) -> tuple[np.ndarray, int]:
    """A bundle-branch-block-like QRS: a 30 ms rise, a flat top, a 30 ms fall."""
    beat = np.zeros(int(0.8 * fs))
    onset, ramp = int(0.3 * fs), int(0.03 * fs)
    offset = onset + int(width_s * fs)
    beat[onset : onset + ramp] = np.linspace(0, 1.0, ramp)
    beat[onset + ramp : offset - ramp] = 1.0
    beat[offset - ramp : offset] = np.linspace(1.0, 0, ramp)
    return beat, onset + ramp  # R where the top begins, as a detector may put it


def test_a_wide_flat_topped_qrs_is_not_cut_short_on_its_plateau():
    fs = 500.0
    beat, r = _wide_flat_complex(fs, 0.16)
    edges = delineate.qrs_edges(beat, r, fs)
    assert edges is not None
    assert abs((edges[1] - edges[0]) / fs - 0.16) <= 0.01  # not the 30 ms of the rise


def test_a_narrow_qrs_still_ends_where_its_slope_dies_away():
    fs = 500.0
    beat, r = _wide_flat_complex(fs, 0.08)
    edges = delineate.qrs_edges(beat, r, fs)
    assert edges is not None
    assert abs((edges[1] - edges[0]) / fs - 0.08) <= 0.01
