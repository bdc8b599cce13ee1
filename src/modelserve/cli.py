"""``modelserve start | serve | torch_serve | tf_serve | trt_serve | paddle | stop | status | ps |
logs | container``: argument parsing only (control.py does what each command means, container.py
what the image runs, grpst_flags.py what grpst's flags set)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from modelserve import __version__, container, control, grpst_flags, quick_deploy, repository
from modelserve.cli_flags import DEVICE_HELP, add_listen_flags, whole_number
from modelserve.config import ConfigError, PortFlags, Settings, load_settings
from modelserve.paddle import deploy as paddle_deploy

DEFAULT_LOG_DIR = Path("logs")
# TorchServe's start flags modelserve accepts but has no use for: log4j and C++ log configs,
# workflow store (workflows are read from the model store) and plugin jars.
TORCHSERVE_UNUSED_FLAGS = {
    ("--log-config",): "a log4j file; modelserve's logs follow the log_* keys (see --help)",
    ("--cpp-log-config",): "the C++ backend's log config; modelserve has no C++ backend",
    ("--workflow-store",): "workflows are read from the model store",
    ("--plugins-path", "--ppath"): "Java plugins do not apply to modelserve",
}


def torchserve_arguments(argv: list[str]) -> list[str]:
    """TorchServe's command line (``--start`` / ``--stop`` / ``-v`` with the same flags) as
    modelserve's, so scripts run after replacing the word ``torchserve``."""
    if not argv or not argv[0].startswith("-") or argv[0] in ("-h", "--help", "--version"):
        return argv
    if argv == ["-v"]:
        return ["--version"]
    if "--stop" in argv and "--start" not in argv:
        # TorchServe's --stop --foreground waits for the exit; modelserve's stop always does.
        return ["stop", *(arg for arg in argv if arg not in ("--stop", "--foreground"))]
    return ["start", *(arg for arg in argv if arg != "--start")]


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        "model_store": getattr(args, "model_store", None),
        "log_level": getattr(args, "log_level", None),
        "log_format": getattr(args, "log_format", None),
        "log_dir": getattr(args, "log_dir", None),
        "device": getattr(args, "device", None),
        "instance_name": getattr(args, "instance", None),
        # --ncs can only turn snapshots off; without it the configured value stands.
        "enable_snapshots": False if getattr(args, "ncs", False) else None,
        # Likewise, these flags only switch their setting one way.
        "disable_token_authorization": True if getattr(args, "disable_token_auth", False) else None,
        "enable_model_api": True if getattr(args, "enable_model_api", False) else None,
        "spare_worker": False if getattr(args, "no_spare_worker", False) else None,
        **repository.settings_overrides(args),
    }
    return _port_flags(args).apply(load_settings(args.ts_config, overrides))


def _port_flags(args: argparse.Namespace) -> PortFlags:
    inference, grpc_inference = repository.inference_ports(args)
    return PortFlags(
        inference=inference,
        management=getattr(args, "management_port", None),
        metrics=getattr(args, "metrics_port", None),
        grpc_inference=grpc_inference,
        grpc_management=getattr(args, "grpc_management_port", None),
        no_grpc=getattr(args, "no_grpc", False),
    )


def _warn_unused_flags(args: argparse.Namespace) -> None:
    for flags, why in TORCHSERVE_UNUSED_FLAGS.items():
        if getattr(args, _dest(flags[0]), None) is not None:
            print(f"modelserve: ignoring {flags[0]}: {why}", file=sys.stderr)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _start(args: argparse.Namespace) -> int:
    _warn_unused_flags(args)
    settings = _settings_from(args)
    if settings.model_store is not None and not settings.model_store.is_dir():
        print(f"modelserve: model store {settings.model_store} is not a directory", file=sys.stderr)
        return 1
    if control.name_in_use(settings):
        return 1
    models = args.models or settings.load_models
    if args.foreground:
        return control.run_foreground(settings, models, console_log=args.log_file)
    return control.start_background(args.arguments, settings, _console_log(args, settings))


def _serve_request(
    args: argparse.Namespace, command: grpst_flags.Command | None
) -> quick_deploy.ServeRequest:
    """What serve (``command`` None) or a grps command was asked for; QuickDeployError for a
    model the command does not serve, or flags that do not go together."""
    if command is not None:
        grpst_flags.check_format(command, args.path)
    workers = getattr(args, "workers", None) or getattr(args, "streams", None) or 1
    server = grpst_flags.server_overrides(args)
    if command is not None and args.log_dir is None:
        server["log_dir"] = DEFAULT_LOG_DIR / args.instance  # each server's logs apart
    return quick_deploy.ServeRequest(
        path=args.path,
        name=getattr(args, "name", None),
        settings=grpst_flags.version_settings(args, workers),
        device=grpst_flags.device(args),
        ports=grpst_flags.ports(args, grps_command=command is not None),
        instance_name=args.instance,
        output=args.output,
        server=server,
        handler_options=grpst_flags.handler_options(args),
        grps=command is not None,
    )


def _serve(args: argparse.Namespace) -> int:
    try:
        return _serve_in_foreground(_serve_request(args, None), args.ts_config, None)
    except quick_deploy.QuickDeployError as exc:
        print(f"modelserve: {exc}", file=sys.stderr)
        return 1


def _serve_in_foreground(
    request: quick_deploy.ServeRequest, config_file: Path | None, console_log: Path | None
) -> int:
    try:
        with quick_deploy.prepare(request, config_file) as deployment:
            if control.name_in_use(deployment.settings):
                return 1
            return control.run_foreground(
                deployment.settings, deployment.startup_models, deployment.usage, console_log
            )
    except KeyboardInterrupt:  # Ctrl-C while packing, before the server handles signals
        return 130


def _paddle(args: argparse.Namespace) -> int:
    try:
        with paddle_deploy.prepare(
            args.service_file, _port_flags(args), args.ts_config, args.instance
        ) as deployment:
            for notice in deployment.notices:
                print(f"modelserve: {notice}", file=sys.stderr)
            if control.name_in_use(deployment.settings):
                return 1
            return control.run_foreground(
                deployment.settings,
                deployment.startup_models,
                deployment.usage,
                paddle_services=[deployment.service],
            )
    except KeyboardInterrupt:  # Ctrl-C while the service file runs or packing
        return 130


def _grps_serve(args: argparse.Namespace) -> int:
    """A grps command: serve in the background, as grpst does, then follow the log."""
    try:
        request = _serve_request(args, grpst_flags.COMMANDS[args.command])
        if args.foreground:  # the server itself, which the command below starts
            return _serve_in_foreground(request, args.ts_config, args.log_file)
        settings = quick_deploy.check(request, args.ts_config)
    except quick_deploy.QuickDeployError as exc:
        print(f"modelserve: {exc}", file=sys.stderr)
        return 1
    if control.name_in_use(settings):
        return 1
    log_path = _console_log(args, settings)
    status = control.start_background(args.arguments, settings, log_path, wait_s=args.timeout)
    if status != 0 or args.no_logging:
        return status
    return control.follow_log(log_path, settings.resolved_runtime_dir(), args.instance)


def _console_log(args: argparse.Namespace, settings: Settings) -> Path:
    if args.log_file is not None:
        return args.log_file
    # Not log_dir/modelserve.log: the server log's own rotating handler writes that file.
    if settings.log_dir:
        return settings.log_dir / "console.log"
    # One file per server: two servers started in one directory must not share one.
    name = control.expected_name(settings)
    return DEFAULT_LOG_DIR / (f"modelserve-{name}.log" if name else "modelserve.log")


def _runtime_dir(args: argparse.Namespace) -> Path:
    return load_settings(args.ts_config).resolved_runtime_dir()


def _stop(args: argparse.Namespace) -> int:
    return control.stop(_runtime_dir(args), args.name, args.all)


def _status(args: argparse.Namespace) -> int:
    return control.status(_runtime_dir(args), args.name)


def _ps(args: argparse.Namespace) -> int:
    return control.ps(_runtime_dir(args), args.json, args.name)


def _logs(args: argparse.Namespace) -> int:
    return control.logs(_runtime_dir(args), args.name)


def _container(args: argparse.Namespace) -> int:
    chosen = container.plan(args.model_dir, args.name, args.command, os.environ)
    os.environ.update(chosen.environment)
    return main(chosen.argv)


SERVE_HELP = "serve one saved model file at once, in the foreground"


def _add_serve_command(serve: argparse.ArgumentParser) -> None:
    serve.description = (
        "Pack PATH for the built-in tensor handler (JSON nested lists in and out) and serve it "
        f"in the foreground until Ctrl-C or SIGTERM. PATH is {quick_deploy.SUPPORTED_FORMATS}. "
        "grpst's quick-deploy flags work too (docs/from-grps.md)."
    )
    serve.add_argument("path", type=Path, metavar="PATH", help="the saved model")
    serve.add_argument("--name", help="model name in the URLs (default: the file name's stem)")
    serve.add_argument(
        "--batch-size",
        type=whole_number(1),
        default=quick_deploy.DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"requests per batch (default {quick_deploy.DEFAULT_BATCH_SIZE})",
    )
    serve.add_argument(
        "--max-batch-delay",
        type=whole_number(0),
        default=quick_deploy.DEFAULT_MAX_BATCH_DELAY_MS,
        metavar="MS",
        help="longest a request is held for batch-mates, in ms, and only while more requests "
        "are on their way (a lone request on an idle worker goes at once); 0 never holds "
        f"(default {quick_deploy.DEFAULT_MAX_BATCH_DELAY_MS})",
    )
    serve.add_argument(
        "--workers",
        type=whole_number(1),
        default=quick_deploy.DEFAULT_WORKERS,
        metavar="N",
        help=f"worker processes (default {quick_deploy.DEFAULT_WORKERS})",
    )
    serve.add_argument(
        "--device",
        type=grpst_flags.grps_device,
        help=f"{DEVICE_HELP} (grpst's gpu, gpu:N and original too)",
    )
    serve.add_argument(
        "--port",
        type=grpst_flags.port_pair,
        metavar="PORT[,GRPC_PORT]",
        help="over the configured inference_address (default 8080; 0 = any free port), and "
        "the gRPC inference port (grpst's HTTP,GRPC)",
    )
    add_listen_flags(serve, own_port=True)
    serve.add_argument(
        "--output",
        "--output_path",
        type=Path,
        metavar="FILE.mar",
        help="also write the model archive here, for a later modelserve start",
    )
    grpst_flags.add_flags(serve, grpst_flags.SERVE_FLAGS, defaults=False)
    serve.set_defaults(handler=_serve)


PADDLE_HELP = "serve a Paddle Serving pipeline service (web_service.py), in the foreground"


def _add_paddle_command(paddle: argparse.ArgumentParser) -> None:
    paddle.description = (
        "Serve a Paddle Serving pipeline service unchanged, in the foreground until Ctrl-C or "
        "SIGTERM. SERVICE (its WebService and Op classes, prepare_pipeline_config, "
        "run_service) runs up to run_service() in a process of its own to give its DAG; its "
        "config.yml is read as Paddle reads it. Each op's init_op, preprocess and postprocess "
        "run in workers of their own (op.NAME.concurrency of them), each op's model "
        "(local_service_conf.model_config: the ONNX, TorchScript, SavedModel or Paddle "
        "inference model in that directory) serves as a model of its own, with the op's "
        "batch_size. Clients call POST /SERVICE_NAME/prediction on http_port with "
        '{"key": [...], "value": [...]}, or PipelineClient on rpc_port (gRPC); the answer is '
        "Paddle's {err_no, err_msg, key, value}. GET /services/SERVICE_NAME on the management "
        "port describes its ops and their state; the metrics port counts its requests and "
        "each op's latency (modelserve_pipeline_*). The flags below win over config.yml's "
        "ports."
    )
    paddle.add_argument(
        "service_file", type=Path, metavar="SERVICE", help="the service's web_service.py"
    )
    add_listen_flags(paddle)
    paddle.set_defaults(handler=_paddle)


def _add_grps_command(parser: argparse.ArgumentParser, command: grpst_flags.Command) -> None:
    parser.description = (
        f"{command.help}: grpst's flags and defaults, in the background, its log followed "
        "until Ctrl-C (the server keeps running: modelserve stop NAME). docs/from-grps.md."
    )
    parser.add_argument("path", type=Path, metavar="model_path", help=command.formats)
    parser.add_argument(
        "--name",
        dest="instance",
        default=grpst_flags.GRPS_NAME,
        help="the server's name for modelserve ps, logs and stop "
        f"(default {grpst_flags.GRPS_NAME})",
    )
    parser.add_argument(
        "--no_logging", action="store_true", help="return once it serves, the log not followed"
    )
    for flag in ("--management-port", "--metrics-port", "--grpc-management-port"):
        parser.add_argument(
            flag, type=whole_number(0, 65535), metavar="PORT", help="default: any free port"
        )
    grpst_flags.add_flags(parser, command.flags, defaults=True)
    # The server itself, as the command starts it in the background.
    parser.add_argument("--foreground", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--log-file", type=Path, help=argparse.SUPPRESS)
    parser.set_defaults(handler=_grps_serve)


def _add_start_command(start: argparse.ArgumentParser) -> None:
    start.add_argument("--model-store", type=Path, metavar="DIR", help="directory of archives")
    start.add_argument(
        "--models",
        nargs="+",
        metavar="[NAME=]ARCHIVE",
        help="archives to load at startup, or 'all' for every archive in the model store; "
        "served even when a snapshot is restored",
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
        "--no-spare-worker",
        action="store_true",
        help="keep no spare worker waiting for the next model (spare_worker=false): saves the "
        "memory of one idle worker, and a registration then starts its worker from scratch",
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
    add_listen_flags(start)
    start.add_argument("--name", dest="instance", metavar="NAME", help="the same as --instance")
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
        "logs/modelserve-NAME.log, or console.log in the --log-dir)",
    )
    start.add_argument("--device", help=DEVICE_HELP)
    repository.add_arguments(start)
    for flags, why in TORCHSERVE_UNUSED_FLAGS.items():
        start.add_argument(*flags, metavar="PATH", help=f"TorchServe's; ignored: {why}")
    start.set_defaults(handler=_start)


def build_parser() -> argparse.ArgumentParser:
    """The ``modelserve`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="modelserve",
        description="Serve TorchServe model archives (.mar) over HTTP and gRPC. TorchServe's "
        "own command line works too: modelserve --start --model-store DIR --models M.mar, "
        "modelserve --stop.",
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

    _add_start_command(with_config(commands.add_parser("start", help="start a server")))
    _add_serve_command(with_config(commands.add_parser("serve", help=SERVE_HELP)))
    _add_paddle_command(with_config(commands.add_parser("paddle", help=PADDLE_HELP)))
    for command in grpst_flags.COMMANDS.values():
        _add_grps_command(
            with_config(commands.add_parser(command.name, help=command.help)), command
        )
    stop = with_config(commands.add_parser("stop", help="stop a running server"))
    stop.add_argument("name", nargs="?", metavar="NAME", help="which one, when several run")
    stop.add_argument("--all", action="store_true", help="stop every running server")
    stop.set_defaults(handler=_stop)
    status = with_config(commands.add_parser("status", help="show a running server"))
    status.add_argument("name", nargs="?", metavar="NAME", help="which one, when several run")
    status.set_defaults(handler=_status)
    ps = with_config(commands.add_parser("ps", help="list your running servers"))
    ps.add_argument("--json", action="store_true", help="one JSON array of their records")
    ps.add_argument("-n", "--name", help="only the server of this name (grpst ps -n)")
    ps.set_defaults(handler=_ps)
    logs = with_config(commands.add_parser("logs", help="follow a background server's log"))
    logs.add_argument("name", nargs="?", metavar="NAME", help="which one, when several run")
    logs.set_defaults(handler=_logs)
    container_command = commands.add_parser(
        "container", help="what the container image runs (docs/deploy.md)"
    )
    container.add_arguments(container_command)
    container_command.set_defaults(handler=_container)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``modelserve`` command."""
    arguments = torchserve_arguments(sys.argv[1:] if argv is None else argv)
    if "--start" in arguments and "--stop" in arguments:
        print("modelserve: --start and --stop cannot be used together", file=sys.stderr)
        return 2
    args = build_parser().parse_args(arguments)
    # A background start runs the same command again in the foreground.
    args.arguments = arguments
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"modelserve: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
