"""The query parameters of the management, token and metrics APIs, declared once.

Each operation's parameters (name, type, default, bounds, description) are written here and
nowhere else: the API descriptions (``api.openapi``) are generated from this table, and the
handlers read their values through it (``SCALE.parse(params)``), so a documented bound is the
bound enforced. A parameter the description does not list, or a bad value, is a 400 that names
it.

Bounds that the engine sets are its constants, referenced here. No web framework: the REST and
the gRPC adapters can both validate with this table.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelserve.engine.errors import BadRequestException
from modelserve.engine.registration import RUNTIMES
from modelserve.engine.registry import PATH_SEGMENT_PATTERN
from modelserve.engine.worker_pool import MAX_WORKERS_PER_VERSION
from modelserve.security.tokens import KeyKind
from modelserve.suggestions import did_you_mean
from modelserve.telemetry.dashboard_series import RESOLUTIONS

# TorchServe reads its integer parameters as Java ints, so nothing larger is valid there either.
# The bound also keeps values in range of what they feed: asyncio timers (a float of seconds),
# orjson (64-bit integers) in describe and snapshots.
INT_MAX = 2**31 - 1
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def reject_unknown(names: Iterable[str], accepted: Collection[str]) -> None:
    """400 for the first of ``names`` that is not ``accepted``, naming it and the accepted one
    closest to it: a mistyped parameter must not be silently ignored."""
    for name in names:
        if name not in accepted:
            listing = ", ".join(sorted(accepted)) if accepted else "none"
            raise BadRequestException(
                f"Unknown parameter {name!r}{did_you_mean(name, accepted)}; accepted: {listing}"
            )


def int_param(
    params: Mapping[str, Any],
    name: str,
    default: int | None,
    minimum: int = 0,
    maximum: int = INT_MAX,
) -> int | None:
    """An integer parameter in [``minimum``, ``maximum``]; ``default`` when absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    # A JSON body may carry true or 2.5: int() would read them as 1 and 2 without a word.
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise BadRequestException(f"Invalid value for {name}: {raw!r} (expected an integer)")
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError):
        raise BadRequestException(
            f"Invalid value for {name}: {raw!r} (expected an integer)"
        ) from None
    if value < minimum:
        raise BadRequestException(f"Invalid value for {name}: {value} (must be >= {minimum})")
    if value > maximum:
        raise BadRequestException(f"Invalid value for {name}: {value} (must be <= {maximum})")
    return value


def bool_param(params: Mapping[str, Any], name: str, default: bool | None) -> bool | None:
    """A boolean parameter (true/false/1/0/yes/no); ``default`` when absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequestException(f"Invalid value for {name}: {raw!r} (expected true or false)")


def str_param(params: Mapping[str, Any], name: str) -> str | None:
    """A string parameter; None when absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise BadRequestException(f"Invalid value for {name}: {raw!r} (expected a string)")
    return raw


# "array": a string that may be given more than once (TorchServe's name[]=a&name[]=b).
Kind = Literal["integer", "boolean", "string", "array"]


@dataclass(frozen=True, slots=True)
class Parameter:
    """One query parameter (or register JSON key) of an operation.

    ``parse`` enforces the type, ``default`` and, for integers, [``minimum``, ``maximum``].
    ``required``, ``enum`` and ``pattern`` are documented here and checked where TorchServe's
    message for them is written (the engine, for gRPC too; the token API), with the constants
    named here.
    """

    name: str
    kind: Kind
    description: str
    default: Any = None
    minimum: int = 0
    maximum: int = INT_MAX
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    required: bool = False
    # TorchServe accepts it and does nothing with it; so does modelserve (it is still validated,
    # so a malformed value is named rather than passed over).
    ignored: bool = False

    def parse(self, params: Mapping[str, Any]) -> Any:
        """This parameter's value in ``params``: the default when absent or empty, a 400
        naming it when malformed or out of bounds."""
        if self.kind == "integer":
            return int_param(params, self.name, self.default, self.minimum, self.maximum)
        if self.kind == "boolean":
            return bool_param(params, self.name, self.default)
        return str_param(params, self.name)


class Operation:
    """The query parameters of one operation, in the order they are checked: the only ones
    it accepts."""

    __slots__ = ("names", "parameters")

    def __init__(self, *parameters: Parameter) -> None:
        self.parameters = parameters
        self.names = frozenset(parameter.name for parameter in parameters)

    def parse(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The values of the operation's parameters, by name, with the defaults of those
        absent; a 400 for a name it does not accept or a malformed value, in table order.
        Ignored parameters are checked but left out, as are repeated ones (``array``: a
        mapping holds one value per name, so the handler reads those itself)."""
        reject_unknown(params, self.names)
        values = {}
        for parameter in self.parameters:
            if parameter.kind == "array":
                continue
            value = parameter.parse(params)
            if not parameter.ignored:
                values[parameter.name] = value
        return values


# GET /models
LIST = Operation(
    Parameter("limit", "integer", "Page size (at most 100).", default=100),
    Parameter("next_page_token", "integer", "Offset of the page.", default=0),
)

# POST /models (query parameters, or a JSON body with the same keys). The serving settings left
# out come from the model's config, then config.properties.
REGISTER = Operation(
    Parameter(
        "url",
        "string",
        "Archive name in the model store, a file:// url, or a url matching allowed_urls.",
        required=True,
    ),
    Parameter(
        "model_name", "string", "Overrides the manifest's model name.", pattern=PATH_SEGMENT_PATTERN
    ),
    Parameter("handler", "string", "Overrides the manifest's handler."),
    Parameter("runtime", "string", "The runtime.", enum=RUNTIMES),
    Parameter("batch_size", "integer", "Largest batch.", minimum=1),
    Parameter(
        "max_batch_delay",
        "integer",
        "Longest a request is held for batch-mates, ms (only while more are on their way).",
    ),
    Parameter("initial_workers", "integer", "Workers to start.", maximum=MAX_WORKERS_PER_VERSION),
    Parameter("synchronous", "boolean", "Wait for the workers.", default=True),
    Parameter("response_timeout", "integer", "Seconds a batch may take.", minimum=1),
    Parameter("startup_timeout", "integer", "Seconds a model load may take.", minimum=1),
    Parameter("s3_sse_kms", "boolean", "TorchServe's signed S3 download.", ignored=True),
)

# POST /workflows (query parameters, or a JSON body with the same keys)
REGISTER_WORKFLOW = Operation(
    Parameter("url", "string", "Workflow archive (.war) name in the model store.", required=True),
    Parameter(
        "workflow_name",
        "string",
        "Overrides the manifest's workflow name.",
        pattern=PATH_SEGMENT_PATTERN,
    ),
    Parameter(
        "response_timeout",
        "integer",
        "TorchServe's; node timeouts come from the spec.",
        ignored=True,
    ),
    Parameter("startup_timeout", "integer", "TorchServe's; accepted and unused.", ignored=True),
    Parameter("s3_sse_kms", "boolean", "TorchServe's signed S3 download.", ignored=True),
)

# GET and DELETE /workflows/{workflow_name}: no query parameters.
WORKFLOW = Operation()

# GET /services/{service_name} (a Paddle Serving service): no query parameters.
SERVICE = Operation()

# GET /models/{model_name}[/{version}]
DESCRIBE = Operation(
    Parameter(
        "customized",
        "boolean",
        "TorchServe's handler-defined metadata: accepted, not yet returned; "
        "a 400 with the version all.",
        default=False,
    ),
)

# PUT /models/{model_name}[/{version}]. TorchServe 0.12 documents timeout and number_gpu, and
# its REST API ignores them.
SCALE = Operation(
    Parameter(
        "min_worker",
        "integer",
        "Workers to run at least.",
        default=1,
        maximum=MAX_WORKERS_PER_VERSION,
    ),
    Parameter(
        "max_worker",
        "integer",
        "Workers to run at most (default min_worker; less than min_worker is a 400).",
        maximum=MAX_WORKERS_PER_VERSION,
    ),
    Parameter("synchronous", "boolean", "Wait for the workers.", default=False),
    Parameter("model_version", "string", "The version, when the path names none."),
    Parameter(
        "timeout",
        "integer",
        "Seconds a stopping worker may take to finish its requests (-1: no limit).",
        minimum=-1,
        ignored=True,
    ),
    Parameter("number_gpu", "integer", "GPU workers to start.", ignored=True),
)

# DELETE /models/{model_name}[/{version}]. TorchServe reads no parameter here, and scripts
# written for it pass the one its other calls take.
UNREGISTER = Operation(
    Parameter(
        "synchronous",
        "boolean",
        "Unregistering always waits for the workers to stop.",
        ignored=True,
    ),
)

# PUT /models/{model_name}/{version}/set-default
SET_DEFAULT = Operation()

# GET /token, with token authorization on. The keys it regenerates (the API key it does not).
TOKEN_KINDS = (KeyKind.MANAGEMENT.value, KeyKind.INFERENCE.value)
TOKEN = Operation(Parameter("type", "string", "Which key.", enum=TOKEN_KINDS))

# GET /metrics on the metrics plane, with TorchServe's filter: /metrics?name[]=a&name[]=b renders
# only those metric families.
NAME_FILTER = "name[]"
METRICS = Operation(
    Parameter(NAME_FILTER, "array", "Render only these metric families (the parameter repeats).")
)

# GET / on the metrics plane: the dashboard's page.
DASHBOARD_PAGE = Operation()

# GET /dashboard/series on the metrics plane: the dashboard's charts as JSON.
DASHBOARD_RANGES = tuple(RESOLUTIONS)
DASHBOARD_SERIES = Operation(
    Parameter(
        "range",
        "string",
        "; ".join(f"{name}: {resolution.description}" for name, resolution in RESOLUTIONS.items()),
        default=DASHBOARD_RANGES[0],
        enum=DASHBOARD_RANGES,
    )
)
