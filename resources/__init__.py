"""Captioneer's data files (prompt presets, model catalog, icons), installed as the package
captioneer.resources."""
