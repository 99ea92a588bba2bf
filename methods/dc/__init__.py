"""Gradient matching (DC, Zhao, Mopuri & Bilen 2021; with DSA, Zhao & Bilen 2021)."""
