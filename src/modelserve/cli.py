"""``modelserve start | stop | status | serve``: argument parsing and process control only."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

from modelserve import __version__, quick_deploy
from modelserve.config import ConfigError, Settings, load_settings
from modelserve.server import run_server
from modelserve.telemetry.logs import configure_logging

START_WAIT_S = 120
STOP_WAIT_S = 60
POLL_S = 0.1
STARTED_MESSAGE = "Model server started."
DEFAULT_CONSOLE_LOG = Path("logs/modelserve.log")


def _pid_file(settings: Settings) -> Path:
    return settings.resolved_runtime_dir() / "modelserve.pid"


def _running_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, but someone else's
    return pid


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        "model_store": getattr(args, "model_store", None),
        "log_level": getattr(args, "log_level", None),
        "log_format": getattr(args, "log_format", None),
        "log_dir": getattr(args, "log_dir", None),
        "device": getattr(args, "device", None),
        # --ncs can only turn snapshots off; without it the configured value stands.
        "enable_snapshots": False if getattr(args, "ncs", False) else None,
        # Likewise, these flags only switch their setting one way.
        "disable_token_authorization": True if getattr(args, "disable_token_auth", False) else None,
        "enable_model_api": True if getattr(args, "enable_model_api", False) else None,
    }
    return load_settings(args.ts_config, overrides)


def _start(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    if settings.model_store is not None and not settings.model_store.is_dir():
        print(f"modelserve: model store {settings.model_store} is not a directory", file=sys.stderr)
        return 1
    pid_file = _pid_file(settings)
    if _already_running(pid_file):
        return 1
    models = args.models or settings.load_models
    if args.foreground:
        return _run_foreground(settings, models, pid_file)
    return _start_background(_console_log(args, settings), pid_file)


def _already_running(pid_file: Path) -> bool:
    pid = _running_pid(pid_file)
    if pid is not None:
        print(
            f"modelserve is already running (pid {pid}), please use modelserve stop first.",
            file=sys.stderr,
        )
    return pid is not None


def _serve(args: argparse.Namespace) -> int:
    pid_file = _pid_file(_settings_from(args))
    if _already_running(pid_file):
        return 1
    request = quick_deploy.ServeRequest(
        path=args.path,
        name=args.name,
        batch_size=args.batch_size,
        max_batch_delay=args.max_batch_delay,
        workers=args.workers,
        device=args.device,
        port=args.port,
        management_port=args.management_port,
        metrics_port=args.metrics_port,
        output=args.output,
    )
    try:
        with quick_deploy.prepare(request, args.ts_config) as deployment:
            return _run_foreground(
                deployment.settings, deployment.startup_models, pid_file, deployment.usage
            )
    except quick_deploy.QuickDeployError as exc:
        print(f"modelserve: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while packing, before the server handles signals
        return 130


def _console_log(args: argparse.Namespace, settings: Settings) -> Path:
    if args.log_file is not None:
        return args.log_file
    # Not log_dir/modelserve.log: the server log's own rotating handler writes that file.
    return settings.log_dir / "console.log" if settings.log_dir else DEFAULT_CONSOLE_LOG


def _run_foreground(
    settings: Settings, models: list[str], pid_file: Path, started_note: str = ""
) -> int:
    configure_logging(settings)
    # Each plane's uvicorn would announce itself; the server logs one line per plane instead.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    pid_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def started() -> None:
        pid_file.write_text(f"{os.getpid()}\n")
        print(STARTED_MESSAGE, flush=True)
        if started_note:
            print(started_note, flush=True)

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_server(settings, models, started))
    except ConfigError as exc:
        print(f"modelserve: {exc}", file=sys.stderr)
        return 1
    finally:
        if _running_pid(pid_file) in (None, os.getpid()):
            pid_file.unlink(missing_ok=True)
    return 0


def _start_background(log_path: Path, pid_file: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "modelserve.cli", *sys.argv[1:], "--foreground"]
    with log_path.open("ab") as log_file:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the shell that started it
        )
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if _running_pid(pid_file) == child.pid:
            print(f"{STARTED_MESSAGE} (pid {child.pid}, log {log_path})")
            return 0
        if child.poll() is not None:
            print(f"modelserve: failed to start; see {log_path}", file=sys.stderr)
            return 1
        time.sleep(POLL_S)
    print(f"modelserve: not started after {START_WAIT_S} s; see {log_path}", file=sys.stderr)
    return 1


def _stop(args: argparse.Namespace) -> int:
    pid_file = _pid_file(_settings_from(args))
    pid = _running_pid(pid_file)
    if pid is None:
        print("modelserve is not currently running.")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while _running_pid(pid_file) == pid:
        if time.monotonic() > deadline:
            print(f"modelserve (pid {pid}) did not stop in {STOP_WAIT_S} s", file=sys.stderr)
            return 1
        time.sleep(POLL_S)
    print("modelserve has stopped.")
    return 0


def _status(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    pid = _running_pid(_pid_file(settings))
    if pid is None:
        print("modelserve is not running.")
        return 1
    print(f"modelserve is running (pid {pid})")
    for plane in ("inference", "management", "metrics"):
        print(f"  {plane:<10} {settings.address(plane)}")
    return 0


DEVICE_HELP = (
    "where every worker runs: cpu, cuda (spread over the visible GPUs) or cuda:N; "
    "default: the GPUs when there are any, else the CPU"
)
SERVE_HELP = "serve one saved model file at once, in the foreground"


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an int in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def _add_serve_command(serve: argparse.ArgumentParser) -> None:
    serve.description = (
        "Pack PATH for the built-in tensor handler (JSON nested lists in and out) and serve it "
        f"in the foreground until Ctrl-C or SIGTERM. PATH is {quick_deploy.SUPPORTED_FORMATS}."
    )
    port = _whole_number(1, 65535)
    serve.add_argument("path", type=Path, metavar="PATH", help="the saved model")
    serve.add_argument("--name", help="model name in the URLs (default: the file name's stem)")
    serve.add_argument(
        "--batch-size",
        type=_whole_number(1),
        default=quick_deploy.DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"requests per batch (default {quick_deploy.DEFAULT_BATCH_SIZE})",
    )
    serve.add_argument(
        "--max-batch-delay",
        type=_whole_number(0),
        default=quick_deploy.DEFAULT_MAX_BATCH_DELAY_MS,
        metavar="MS",
        help="longest wait in ms for a batch to fill "
        f"(default {quick_deploy.DEFAULT_MAX_BATCH_DELAY_MS})",
    )
    serve.add_argument(
        "--workers",
        type=_whole_number(1),
        default=quick_deploy.DEFAULT_WORKERS,
        metavar="N",
        help=f"worker processes (default {quick_deploy.DEFAULT_WORKERS})",
    )
    serve.add_argument("--device", help=DEVICE_HELP)
    for flag, plane, default in (
        ("--port", "inference", 8080),
        ("--management-port", "management", 8081),
        ("--metrics-port", "metrics", 8082),
    ):
        serve.add_argument(
            flag,
            type=port,
            metavar="PORT",
            help=f"{plane} port (default: the configured one, else {default})",
        )
    serve.add_argument(
        "--output",
        type=Path,
        metavar="FILE.mar",
        help="also write the model archive here, for a later modelserve start",
    )
    serve.set_defaults(handler=_serve)


def build_parser() -> argparse.ArgumentParser:
    """The ``modelserve`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="modelserve",
        description="Serve TorchServe model archives (.mar) over HTTP.",
    )
    parser.add_argument("--version", action="version", version=f"modelserve {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument(
            "--ts-config",
            type=Path,
            metavar="FILE",
            help="config.properties file (TorchServe keys); default ./config.properties",
        )
        return command

    start = with_config(commands.add_parser("start", help="start the server"))
    start.add_argument("--model-store", type=Path, metavar="DIR", help="directory of archives")
    start.add_argument(
        "--models",
        nargs="+",
        metavar="[NAME=]ARCHIVE",
        help="archives to load at startup, or 'all' for every archive in the model store",
    )
    start.add_argument(
        "--foreground", action="store_true", help="stay in the foreground and log to stderr"
    )
    start.add_argument(
        "--ncs",
        "--no-config-snapshots",
        action="store_true",
        help="do not save or restore model snapshots",
    )
    start.add_argument(
        "--dt",
        "--disable-token-auth",
        dest="disable_token_auth",
        action="store_true",
        help="serve without token authorization, even on a public address (docs/security.md)",
    )
    start.add_argument(
        "--enable-model-api",
        action="store_true",
        help="allow register and unregister (the default; accepted for TorchServe scripts)",
    )
    start.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    start.add_argument(
        "--log-format", choices=["text", "json"], help="text (default) or one JSON object a line"
    )
    start.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="also write modelserve.log, access_log.log and model_log.log here, rotated daily",
    )
    start.add_argument(
        "--log-file",
        type=Path,
        help="where a background server writes its console output (default "
        "logs/modelserve.log, or console.log in the --log-dir)",
    )
    start.add_argument("--device", help=DEVICE_HELP)
    start.set_defaults(handler=_start)
    _add_serve_command(with_config(commands.add_parser("serve", help=SERVE_HELP)))
    with_config(commands.add_parser("stop", help="stop the running server")).set_defaults(
        handler=_stop
    )
    with_config(commands.add_parser("status", help="is the server running?")).set_defaults(
        handler=_status
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``modelserve`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"modelserve: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
