"""UniDD's filter matching: CFM (Bo, Liu & Wang 2025), LFM and any filter of Table 1."""
