"""Helpers behind :func:`telemetry.analysis.analyze_ecg` (pure NumPy/NeuroKit2)."""
