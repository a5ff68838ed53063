"""PySide6 views, worker threads, the wizard and dialogs."""
