"""Models: load, quantise, LoRA, presets, reports, merge. Importing the package silences the known,
meaningless messages of the libraries it wraps (models/noise.py), before any of them is imported."""

from models.noise import silence_known_noise

silence_known_noise()
