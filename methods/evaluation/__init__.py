"""Evaluation: student training settings and presets, training students, DD-Ranking's scores."""
