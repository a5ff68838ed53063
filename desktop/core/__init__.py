"""Qt-free core: settings, paths, images, prompt tasks and result parsing."""
