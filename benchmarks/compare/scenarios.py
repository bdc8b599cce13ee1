"""What a comparison run measures, in what order, and about how long it takes."""

from __future__ import annotations

from dataclasses import dataclass

from compare.servers import Deployment

# modelserve first: every group runs it, then each competitor, back to back per concurrency.
SERVER_ORDER = (
    "modelserve",
    "modelserve-v2",
    "torchserve",
    "triton",
    "rayserve",
    "rayserve-default",
    "bentoml",
    "mlserver",
    "litserve",
)
# TorchServe and modelserve run the same archives, so they meet on every model and deployment;
# the others serve the tiny models with one worker (replica, model instance) only.
FULL_COVERAGE = {"modelserve", "torchserve"}
ONE_WORKER_MODELS = {
    "mlserver": {"digits", "mlp"},
    "litserve": {"digits", "mlp"},
    "modelserve-v2": {"mlp"},
    "triton": {"mlp"},
    "rayserve": {"mlp"},
    "rayserve-default": {"mlp"},
    "bentoml": {"mlp"},
}
# The tiny MLP is where all servers meet, each with one worker: more would only add rows.
MEETING_MODEL = "mlp"
UNBATCHED = (1, 0)
BATCHED = (8, 5)  # batch size, max batch delay in ms
# Deployed once on every server for memory and register-to-ready: the model all servers serve.
PROFILED = Deployment(MEETING_MODEL, workers=1, batch_size=1, max_batch_delay_ms=0)

# Rough costs on a 2-core machine, for the estimate printed before a run.
WRK_OVERHEAD_S = 0.7  # wrk start and exit, parsing
DEPLOY_S = 6.0  # per server and group: register, warm up, unregister
# Servers started for each deployment take longer: a process, its imports, a Ray cluster.
SLOW_DEPLOY_S = {
    "triton": 15.0,
    "rayserve": 30.0,
    "rayserve-default": 30.0,
    "bentoml": 15.0,
    "mlserver": 10.0,
    "litserve": 10.0,
}
START_S = 10.0  # per server: cold start and stop


@dataclass(frozen=True)
class Group:
    """One deployment on several servers, loaded at each concurrency server after server."""

    deployment: Deployment
    servers: tuple[str, ...]
    concurrency: tuple[int, ...]

    @property
    def runs(self) -> int:
        """wrk runs in this group."""
        return len(self.servers) * len(self.concurrency)


def batchings(model: str, smoke: bool) -> list[tuple[int, int]]:
    """Unbatched always; dynamic batching too for the CNNs (noop has nothing to batch)."""
    if smoke or model == "noop":
        return [UNBATCHED]
    return [UNBATCHED, BATCHED]


def serves(server: str, model: str, workers: int) -> bool:
    """Whether ``server`` is measured on ``model`` with ``workers`` workers."""
    return server in FULL_COVERAGE or (workers == 1 and model in ONE_WORKER_MODELS[server])


def plan(
    models: list[str],
    servers: list[str],
    worker_counts: list[int],
    concurrency: list[int],
    smoke: bool,
) -> list[Group]:
    """Every deployment of every model, each on the servers that can take it."""
    ordered = [name for name in SERVER_ORDER if name in servers]
    groups = []
    for model in models:
        for workers in worker_counts:
            if model == MEETING_MODEL and workers != 1:
                continue
            for batch_size, delay_ms in batchings(model, smoke):
                deployment = Deployment(model, workers, batch_size, delay_ms)
                takers = tuple(name for name in ordered if serves(name, model, workers))
                if takers:
                    groups.append(Group(deployment, takers, tuple(concurrency)))
    return groups


def in_process_configs(groups: list[Group]) -> list[tuple[str, int]]:
    """The (model, batch size) pairs whose in-process limit the report compares against."""
    return list(dict.fromkeys((g.deployment.model, g.deployment.batch_size) for g in groups))


def estimate_s(groups: list[Group], servers: int, duration_s: float, rounds: int) -> float:
    """Seconds a run should take once every venv is installed."""
    wrk_runs = sum(group.runs for group in groups) * rounds + 1  # + the /ping ceiling
    deploys_s = sum(
        SLOW_DEPLOY_S.get(server, DEPLOY_S) for group in groups for server in group.servers
    )
    in_process = len(in_process_configs(groups)) * duration_s
    return wrk_runs * (duration_s + WRK_OVERHEAD_S) + deploys_s + in_process + servers * START_S
