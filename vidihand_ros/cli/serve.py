"""`vidihand serve`: an estimator behind HTTP for many robots (FastAPI under uvicorn, or Ray Serve).

Binding beyond loopback needs a bearer token (from a file or VIDIHAND_TOKEN, never the command
line, where `ps` shows it to every user) unless `--insecure` says the network is trusted.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

from vidihand_ros.cli.options import add_command, count, positive, positive_number, whole_number

__all__ = ["TOKEN_ENV", "add_parser", "is_loopback", "read_token", "run"]

#: The environment variable holding the bearer token when no --token-file is given.
TOKEN_ENV = "VIDIHAND_TOKEN"

EPILOG = f"""\
examples:
  vidihand serve --estimator mediapipe --workers 4
      MediaPipe on 127.0.0.1:8000, four worker processes (no token needed on loopback)
  {TOKEN_ENV}=$(cat ~/.vidihand_token) vidihand serve --estimator vidihand --checkpoint ckpt/ \\
      --mano-dir mano/ --device cuda --host 0.0.0.0 --ssl-certfile cert.pem --ssl-keyfile key.pem
  vidihand serve --estimator mediapipe --host 0.0.0.0 --token-file /etc/vidihand/token
  vidihand serve --estimator vidihand ... --ray --replicas 4 --address ray://head:10001
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "serve",
        run=run,
        help="serve an estimator over HTTP (msgpack windows in, poses out) for many clients",
        description=(
            "Serve a pose estimator to `vidihand convert --estimator remote` and the ROS node: windows "
            "from many clients are batched into the estimator, with a bounded queue (429 when full), "
            "a body size limit, a per-request deadline and Prometheus metrics at /metrics."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    est = p.add_argument_group("estimator")
    est.add_argument(
        "--estimator", required=True, metavar="NAME", help="mediapipe, vidihand, or package.module:factory"
    )
    est.add_argument(
        "--estimator-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="estimator option (repeatable)",
    )
    est.add_argument("--checkpoint", type=Path, help="model checkpoint directory for --estimator vidihand")
    est.add_argument("--mano-dir", type=Path, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl")
    est.add_argument(
        "--device",
        default="cpu",
        type=_device,
        help="cpu, cuda or cuda:N: where the model runs and JPEG frames are decoded (default %(default)s)",
    )
    est.add_argument(
        "--workers",
        type=lambda text: whole_number(text, 0, 256),
        default=0,
        metavar="N",
        help="worker processes, each with its own estimator, for CPU estimators such as MediaPipe "
        "(default 0: one estimator thread in the server process)",
    )
    net = p.add_argument_group("network and security")
    net.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)"
    )
    net.add_argument("--port", type=lambda text: whole_number(text, 1, 65535), default=8000)
    net.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding the bearer token clients must send (else ${TOKEN_ENV}); required beyond loopback",
    )
    net.add_argument(
        "--insecure",
        action="store_true",
        help="allow binding beyond loopback without a token (trusted networks)",
    )
    net.add_argument("--ssl-certfile", type=Path, help="TLS certificate (PEM), with --ssl-keyfile")
    net.add_argument("--ssl-keyfile", type=Path, help="TLS private key (PEM)")
    lim = p.add_argument_group("batching and limits")
    lim.add_argument(
        "--max-batch", type=count, default=8, metavar="N", help="windows per estimator call (default 8)"
    )
    lim.add_argument(
        "--max-wait-ms",
        type=_non_negative_number,
        default=5.0,
        metavar="MS",
        help="how long a window waits for others to fill its batch (default 5)",
    )
    lim.add_argument(
        "--queue", type=count, default=64, metavar="N", help="windows queued at most; then 429 (default 64)"
    )
    lim.add_argument(
        "--deadline-s", type=positive_number, default=60.0, metavar="S", help="504 past this (default 60)"
    )
    lim.add_argument(
        "--max-body-mb", type=positive_number, default=128.0, metavar="MB", help="413 past this (default 128)"
    )
    lim.add_argument(
        "--max-pixels",
        type=positive,
        metavar="N",
        help="a frame declaring more pixels is refused before decoding (default 67108864 = 8192x8192)",
    )
    lim.add_argument(
        "--max-streams",
        type=count,
        default=64,
        metavar="N",
        help="stateful estimators: client streams kept per process (default 64)",
    )
    ray = p.add_argument_group("Ray Serve (scale-out)")
    ray.add_argument(
        "--ray", action="store_true", help="deploy as a Ray Serve application instead of uvicorn"
    )
    ray.add_argument("--replicas", type=count, default=1, metavar="N", help="Ray Serve replicas (default 1)")
    ray.add_argument("--address", metavar="ADDR", help="existing Ray cluster (default: start a local one)")


def _device(text: str) -> str:
    if text == "cpu" or text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text[:40]!r}")


def _non_negative_number(text: str) -> float:
    from vidihand_ros.cli.options import finite

    value = finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text[:40]!r}")
    return value


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(token_file: Path | None) -> str | None:
    """The bearer token from `token_file`, else from $VIDIHAND_TOKEN, else None."""
    from vidihand_ros.errors import InputError

    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read the token file: {err}", field="--token-file") from None
        if not token:
            raise InputError(f"token file {token_file} is empty", field="--token-file")
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            return None
    if len(token) < 16 or any(c.isspace() for c in token) or not token.isprintable():
        where = str(token_file) if token_file is not None else f"${TOKEN_ENV}"
        raise InputError(
            f"the token in {where} must be at least 16 printable characters, no spaces", field="token"
        )
    return token


def run(args: argparse.Namespace) -> int:
    from vidihand_ros.errors import InputError

    token = read_token(args.token_file)
    if token is None and not is_loopback(args.host) and not args.insecure:
        raise InputError(
            f"binding to {args.host} needs a bearer token: give --token-file FILE or set {TOKEN_ENV} "
            "(or --insecure on a trusted network)",
            field="--host",
        )
    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise InputError("TLS needs both --ssl-certfile and --ssl-keyfile", field="--ssl-keyfile")
    for flag in ("ssl_certfile", "ssl_keyfile"):
        path = getattr(args, flag)
        if path is not None and not path.is_file():
            raise InputError(f"{path} is not a file", field="--" + flag.replace("_", "-"))
    factory = build_factory(args, token)
    if args.ray:
        return _run_ray(args, factory)
    return _run_uvicorn(args, factory)


def build_factory(args: argparse.Namespace, token: str | None) -> Any:
    """The AppFactory the arguments describe (the server's imports happen here, not at parse time)."""
    from vidihand_ros.estimators import parse_options
    from vidihand_ros.server.factory import AppFactory
    from vidihand_ros.server.runner import EstimatorSpec
    from vidihand_ros.server.settings import BatchSettings, ServerSettings
    from vidihand_ros.wire import WireLimits

    options = parse_options(args.estimator_option)
    for flag in ("mano_dir", "checkpoint"):
        if getattr(args, flag) is not None:
            options[flag] = str(getattr(args, flag))
    if args.estimator == "vidihand":
        options.setdefault("device", args.device)
    limits = WireLimits(max_bytes=int(args.max_body_mb * 1024 * 1024))
    if args.max_pixels is not None:
        limits.max_pixels = args.max_pixels
    settings = ServerSettings(
        token=token,
        limits=limits,
        batch=BatchSettings(
            max_batch=args.max_batch,
            max_wait_s=args.max_wait_ms / 1000.0,
            queue=args.queue,
            workers=args.workers,
            max_streams=args.max_streams,
        ),
        deadline_s=args.deadline_s,
    )
    return AppFactory(EstimatorSpec(args.estimator, options), settings, device=args.device)


def _run_uvicorn(args: argparse.Namespace, factory: Any) -> int:
    import uvicorn

    from vidihand_ros.errors import InputError

    fatal: list[str] = []
    server: uvicorn.Server | None = None

    def on_fatal(message: str) -> None:
        fatal.append(message)
        if server is not None:
            server.should_exit = True

    app = factory(on_fatal=on_fatal)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="info" if args.verbose else "warning",
        ssl_certfile=str(args.ssl_certfile) if args.ssl_certfile else None,
        ssl_keyfile=str(args.ssl_keyfile) if args.ssl_keyfile else None,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    scheme = "https" if args.ssl_certfile else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    auth = "bearer token required" if factory.settings.token else "no token"
    print(
        f"vidihand serve: {args.estimator} on {scheme}://{host}:{args.port} ({auth}); "
        "/readyz answers 200 once warmed up",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C once it has shut down cleanly
        return 0
    except SystemExit as done:  # uvicorn exits when it cannot bind
        raise InputError(
            f"cannot serve on {args.host}:{args.port} (see the message above)", field="--port"
        ) from done
    if fatal:
        raise InputError(f"the estimator did not start: {fatal[0]}", field="--estimator")
    return 0


def _run_ray(args: argparse.Namespace, factory: Any) -> int:
    from vidihand_ros.errors import InputError

    try:
        from vidihand_ros.server import ray_serve
    except ImportError as err:
        raise InputError(f"--ray is not available here: {err}", field="--ray") from None
    if args.replicas > 1 and args.estimator == "mediapipe":
        # Ray Serve spreads a stream's windows over replicas; MediaPipe's tracking needs them all.
        raise InputError(
            "mediapipe keeps per-stream tracking state, which Ray Serve replicas do not share: use "
            "--replicas 1, or --workers N without --ray",
            field="--replicas",
        )
    ray_serve.run(factory, replicas=args.replicas, address=args.address, host=args.host, port=args.port)
    return 0
