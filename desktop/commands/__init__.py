"""One module per `captioneer` subcommand, each with ``register(subparsers)``."""
