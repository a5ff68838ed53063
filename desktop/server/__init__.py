"""`captioneer serve`: one loaded engine answering many local clients over HTTP (a native vision endpoint and
an OpenAI-compatible chat endpoint). Qt-free."""
