"""Data files shipped in the package (the default control map)."""
