"""`captioneer serve`: one loaded engine behind a local HTTP API (OpenAPI docs at /docs) for plugins, scripts
and other apps."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys

from captioneer.desktop.commands.engine_args import add_engine_arguments, overrides_from_args

DEFAULT_PORT = 8765
DEFAULT_MAX_QUEUE = 16
DEFAULT_MAX_REQUEST_MB = 64.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the engine over a local HTTP API (OpenAI-compatible chat completions too)",
        description="Load the model once and answer HTTP requests: POST /v1/vision/completion (an image "
        "and a task), the OpenAI-compatible POST /v1/chat/completions, GET /v1/tasks, /v1/models and "
        "/health; API docs at /docs. Listens on this machine only unless --allow-remote. Ctrl+C stops it.",
    )
    parser.add_argument(
        "--bind", default="127.0.0.1", metavar="ADDRESS",
        help="address to listen on (default 127.0.0.1; another machine's reach needs --allow-remote)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, metavar="N",
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one and prints it)",
    )
    parser.add_argument(
        "--token", metavar="TOKEN",
        help="API token every request must send as 'Authorization: Bearer TOKEN' (default: "
        "$CAPTIONEER_API_TOKEN; made up and shown once when listening beyond this machine)",
    )
    parser.add_argument(
        "--max-queue", type=int, default=DEFAULT_MAX_QUEUE, metavar="N",
        help=f"requests that may wait for the engine; more get HTTP 429 (default {DEFAULT_MAX_QUEUE})",
    )
    parser.add_argument(
        "--in-flight", type=int, default=1, metavar="N",
        help="requests the engine answers at once (default 1; above 1 only with the ollama/openai engines)",
    )
    parser.add_argument(
        "--max-request-mb", type=float, default=DEFAULT_MAX_REQUEST_MB, metavar="MB",
        help="largest request accepted, image included; larger get HTTP 413 "
        f"(default {DEFAULT_MAX_REQUEST_MB:g})",
    )
    add_engine_arguments(parser, subcommand=True)
    parser.set_defaults(func=run)


def check_limits(args: argparse.Namespace, engine: str, in_process: bool) -> None:
    """Refuse limits that cannot work, in one line each.

    Raises:
        ConfigurationError: a value out of range, or --in-flight above 1 for an in-process engine.
    """
    from captioneer.backends.errors import ConfigurationError

    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port {args.port} is not a port: give 1–65535, or 0 for a free one.")
    if args.max_queue < 0:
        raise ConfigurationError(f"--max-queue {args.max_queue}: give 0 or more.")
    if args.max_request_mb <= 0:
        raise ConfigurationError(f"--max-request-mb {args.max_request_mb:g}: give a size above 0.")
    if args.in_flight < 1:
        raise ConfigurationError(f"--in-flight {args.in_flight}: give 1 or more.")
    if args.in_flight > 1 and in_process:
        raise ConfigurationError(
            f"--in-flight {args.in_flight}: the {engine} engine answers one request at a time (one model in "
            "one process), so leave --in-flight at 1; several in flight need the ollama or openai engine."
        )


def listen_socket(bind: str, port: int) -> socket.socket:
    """A socket listening on ``bind``:``port``, bound before the model loads so a taken port fails at once.

    Raises:
        ConfigurationError: the address is unknown, or the port taken or not allowed.
    """
    from captioneer.backends.errors import ConfigurationError

    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            bind, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigurationError(f"Cannot listen on {bind}: {exc.strerror} — check --bind.") from None
    sock = socket.socket(family, kind, proto)
    try:
        if os.name != "nt":  # restart at once on the same port (Windows' meaning of it is unsafe)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"Port {port} on {bind} is already in use (another captioneer serve?): pass another --port, "
                "or --port 0 for a free one."
            ) from None
        raise ConfigurationError(f"Cannot listen on {bind} port {port}: {exc.strerror}.") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def run(args: argparse.Namespace) -> int:
    from captioneer.backends.errors import ConfigurationError
    from captioneer.desktop.core.engine_setup import engine_config, open_backend
    from captioneer.desktop.core.settings import load_settings

    try:
        import uvicorn

        from captioneer.desktop.server.app import create_app
        from captioneer.desktop.server.running import StoppableServer
        from captioneer.desktop.server.service import Service
    except ImportError as exc:
        raise ConfigurationError(
            f"captioneer serve needs {exc.name or exc}: pip install 'captioneer[serve]'"
        ) from None
    from captioneer.desktop.server.access import TOKEN_ENV, listen_token

    settings = load_settings()
    overrides = overrides_from_args(args)
    token, made_up = listen_token(args.bind, overrides.allow_remote, args.token or os.environ.get(TOKEN_ENV))
    config = engine_config(settings, overrides)
    backend = open_backend(settings, config, in_process=overrides.in_process)
    check_limits(args, config.engine, backend.capabilities.in_process)
    sock = listen_socket(args.bind, args.port)
    service: Service | None = None
    try:
        print(f"captioneer: loading {config.engine} model {config.model}…", file=sys.stderr, flush=True)
        backend.load(progress=lambda fraction, message: print(
            f"captioneer: {message} ({fraction:.0%})", file=sys.stderr, flush=True))
        service = Service(backend, config, settings, overrides, in_flight=args.in_flight,
                          max_queue=args.max_queue)
        app = create_app(service, token=token, max_request_bytes=int(args.max_request_mb * 2**20))
        server = StoppableServer(
            uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=15, lifespan="on"), service
        )
        url = url_of(sock)
        if made_up:
            how = "shown only now; send it as 'Authorization: Bearer TOKEN'"
            print(f"captioneer: API token ({how}): {token}", file=sys.stderr, flush=True)
        print(f"captioneer: serving {service.model_id} on {url} (API docs: {url}/docs); Ctrl+C stops",
              file=sys.stderr, flush=True)
        print(url, flush=True)  # the one line a script starting it with --port 0 reads
        server.run(sockets=[sock])
    finally:
        if service is not None:
            service.close()
        backend.unload()
        sock.close()
    if signal.SIGINT in server.signals:
        raise KeyboardInterrupt  # Ctrl+C ends every command with 130
    return 0

