"""How a running server reads on the console: the start summary, ``ps`` rows, ``status``."""

from __future__ import annotations

from modelserve.instances import InstanceRecord

HTTP_PLANES = ("inference", "management", "metrics")
LABEL_WIDTH = 12


def _line(label: str, text: str) -> str:
    return f"  {label:<{LABEL_WIDTH}}{text}"


def _continued(text: str) -> str:
    return _line("", text)


def duration(seconds: float) -> str:
    """``3h 02m``, ``4m 05s`` or ``12s``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def addresses(record: InstanceRecord) -> list[str]:
    """One line per plane the server really listens on."""
    lines = [
        _line(plane, record.addresses[plane]) for plane in HTTP_PLANES if plane in record.addresses
    ]
    grpc = [
        f"{record.addresses[f'grpc_{plane}']} ({plane})"
        for plane in ("inference", "management")
        if f"grpc_{plane}" in record.addresses
    ]
    lines.append(_line("gRPC", ", ".join(grpc) if grpc else "off"))
    return lines


def started_summary(record: InstanceRecord) -> str:
    """What a server just started: its name, where it listens, what it restored and loads."""
    name = record.name
    lines = [
        _line("instance", f"{name}  (modelserve status {name} · modelserve stop {name})"),
        *addresses(record),
    ]
    startup = record.startup
    if startup.get("snapshot"):
        restored = ", ".join(startup["restored"]) or "no models"
        lines.append(_line("restored", f"{restored} from {startup['snapshot']}"))
        for version, why in startup.get("notRestored", {}).items():
            lines.append(_continued(f"{version} NOT restored: {why}"))
    entries = startup.get("models", {})
    for index, (entry, error) in enumerate(entries.items()):
        outcome = "registered, loading" if error is None else f"NOT loaded: {error}"
        lines.append(_line("models" if index == 0 else "", f"{entry}: {outcome}"))
    if not entries and not startup.get("restored"):
        management = record.addresses.get("management", "")
        lines.append(
            _line(
                "models",
                "none yet; register one with: "
                f'curl -X POST "{management}/models?url=NAME.mar&initial_workers=1"',
            )
        )
    return "\n".join(lines)


def settled_summary(record: InstanceRecord) -> str:
    """Once the startup models have loaded or failed: ready, or what does not serve and why."""
    not_ready = record.startup.get("notReady") or {}
    if not not_ready:
        models = ", ".join(record.models)
        return f"Ready: {models}." if models else "Ready."
    reasons = "\n".join(f"  {model}: {why}" for model, why in not_ready.items())
    ping = f"{record.addresses.get('inference', '')}/ping"
    return f"Not serving ({record.startup.get('status')}); {ping} says so too:\n{reasons}"


def status_text(record: InstanceRecord) -> str:
    """``modelserve status``: the server's record in full."""
    uptime = duration(record.uptime_s())
    lines = [f"modelserve {record.name} is running (pid {record.pid}, up {uptime})"]
    lines += addresses(record)
    lines.append(_line("models", ", ".join(record.models) or "none"))
    lines.append(_line("working dir", record.working_dir))
    optional = (
        ("model store", record.model_store),
        ("snapshots", record.snapshot_dir),
        ("log dir", record.log_dir),
        ("console log", record.console_log),
    )
    lines += [_line(label, value) for label, value in optional if value]
    startup = record.startup
    if startup.get("settled"):
        not_ready = startup.get("notReady") or {}
        state = "ready" if not not_ready else "; ".join(f"{m}: {w}" for m, w in not_ready.items())
        lines.append(_line("startup", state))
    else:
        lines.append(_line("startup", "loading"))
    return "\n".join(lines)


def _short(address: str | None) -> str:
    return address.split("://", 1)[-1] if address else "-"


def _grpc_ports(record: InstanceRecord) -> str:
    """``127.0.0.1:7070/7071``: inference, then management (whose host is shown only when
    it differs)."""
    inference = record.addresses.get("grpc_inference")
    management = record.addresses.get("grpc_management")
    if inference is None or management is None:
        return ""
    host, _, port = _short(management).rpartition(":")
    same_host = _short(inference).rpartition(":")[0] == host
    return f"{_short(inference)}/{port if same_host else _short(management)}"


def ps_table(records: list[InstanceRecord]) -> str:
    """``modelserve ps``: one row per running server (grpst ps's name, ports, pid and deploy
    path among its columns)."""
    header = (
        "NAME",
        "PID",
        "UPTIME",
        "INFERENCE",
        "MANAGEMENT",
        "METRICS",
        "GRPC",
        "MODELS",
        "PATH",
    )
    rows = [header]
    for record in records:
        grpc = _grpc_ports(record)
        rows.append(
            (
                record.name,
                str(record.pid),
                duration(record.uptime_s()),
                *(_short(record.addresses.get(plane)) for plane in HTTP_PLANES),
                grpc or "off",
                ",".join(record.models) or "-",
                record.deploy_path or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
