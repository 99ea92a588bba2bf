"""Distribution matching (DM, Zhao & Bilen 2023)."""
