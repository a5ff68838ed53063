"""Measuring models on the user's own photos: caption metrics against reference captions, keyword precision
and recall against the keywords the photos already carry, seconds per photo and peak memory per profile.
Qt-free; `captioneer evaluate` and the window's Compare Models use it."""
