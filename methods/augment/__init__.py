"""Augmentation: DSA as the reference code defines it, the soft-label views, and the strategy language."""
