"""The configuration's schema: one frozen dataclass a section, with its defaults, and the
constants the sections name (the line-up the simulator serves, the reasoning efforts)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Final

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Operator secrets (the admin and metrics keys) shorter than this are refused at start.
MIN_SECRET_CHARS = 32


class ConfigError(ValueError):
    """Invalid configuration; the message starts with the dotted path of the offending key."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a model accepts natively. The compatibility layer patches what is False."""

    system_messages: bool = True
    developer_messages: bool = False
    streaming: bool = True
    tools: bool = True
    response_format: bool = True
    json_schema: bool = True
    images: bool = True
    sampling_params: bool = True
    max_tokens: bool = True
    logprobs: bool = True
    # Its upstream serves `POST /v1/responses`; when not, the gateway serves the Responses API
    # itself, by translation to chat completions.
    responses_api: bool = True
    # The reasoning efforts it takes (`reasoning_effort`, Responses `reasoning.effort`), least
    # first: another one a client sends becomes the nearest of these; empty: it takes none, and
    # one sent is dropped; unset: sent upstream as it is.
    reasoning_effort: tuple[str, ...] | None = None


#: Every reasoning effort OpenAI has named, least first.
EFFORTS: Final = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

#: The vocabularies a model's text can be billed in (`ModelConfig.tokenizer`), all counted
#: exactly offline; the first is the gateway's own (gpt-4o, o1 and later models).
TOKENIZERS: Final = ("o200k_base", "cl100k_base")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens, held as integer micro-dollars per 1M tokens."""

    input: int = 0
    cached_input: int = 0
    output: int = 0
    # Audio tokens, priced apart from text ones (gpt-4o-mini-tts writes audio, gpt-4o
    # transcription models read it).
    audio_input: int = 0
    audio_output: int = 0
    # A prompt of more input tokens than this makes the whole call cost twice the input and
    # 1.5 times the output price (OpenAI's newest models); 0 = no such rule.
    long_context_above: int = 0
    # Input tokens written to the prompt cache (usage `cache_write_tokens`), which OpenAI's
    # newest models bill dearer than input; 0 = the input price (a model that bills no writes).
    cache_write: int = 0


@dataclass(frozen=True, slots=True)
class DeploymentConfig:
    base_url: str = ""  # "" = upstream.base_url
    # The environment variable holding this deployment's key ("" = upstream.api_key): keys
    # stay out of config files.
    api_key_env: str = ""


@dataclass(frozen=True, slots=True)
class FineTuningPrice:
    """What fine-tuning a base model costs: training, by the token trained, and inference on
    the fine-tuned models it makes. A model without a training price is not fine-tuned."""

    training_price: Usd = field(default_factory=lambda: Usd(0))  # per 1M trained tokens
    price: Price = field(default_factory=Price)  # its fine-tunes' inference


@dataclass(frozen=True, slots=True)
class ImageInputTokens:
    """The prompt tokens one image input (chat `image_url`, Responses `input_image`) is billed
    as: at `detail: low`, and at most at any other detail (the largest image upstream accepts).
    Upstream bills them per model, and the hold must count the most a model bills, or a team
    sending large images passes its budget. The defaults are gpt-4o's: 85 at low, and 85 plus
    170 per 512-pixel tile, at most 8 tiles, otherwise (OpenAI's published vision pricing)."""

    low: int = 85
    high: int = 85 + 170 * 8


@dataclass(frozen=True, slots=True)
class ModelConfig:
    upstream: str = ""
    price: Price = field(default_factory=Price)
    context: int = 128_000
    max_output: int = 16_384
    reasoning: bool = False
    # The vocabulary upstream counts (and bills) the model's text in: a hold counted in another
    # one than the model's could be below the bill (cl100k_base, the embedding models' and
    # gpt-3.5-turbo-instruct's, reads non-Latin text as up to three times o200k_base's tokens).
    tokenizer: str = TOKENIZERS[0]
    # What a typical answer costs in output tokens (reasoning included): the cost estimates of
    # `POST /v1/route` use it. 0 = admission.default_completion_tokens.
    typical_completion_tokens: int = 0
    capabilities: Capabilities = field(default_factory=Capabilities)
    # Models to serve the request with, in order, when this one keeps failing or is rate
    # limited upstream (each re-patched for its own capabilities; the team pays what ran).
    fallbacks: tuple[str, ...] = ()
    # More endpoints or keys serving this model, load spread by calls in flight; empty = the
    # `upstream` section's base URL and key.
    deployments: dict[str, DeploymentConfig] = field(default_factory=dict)
    # Media models, priced per unit rather than (only) per token. By "quality/size": USD per
    # image (DALL-E), or the output tokens of one image (GPT image models, which report usage).
    image_prices: dict[str, Usd] = field(default_factory=dict)
    image_tokens: dict[str, int] = field(default_factory=dict)
    # Chat and Responses models: what one image input counts in the hold (its `low` and `high`).
    image_input_tokens: ImageInputTokens = field(default_factory=ImageInputTokens)
    character_price: Usd = field(default_factory=lambda: Usd(0))  # per 1M characters (tts-1)
    minute_price: Usd = field(default_factory=lambda: Usd(0))  # per minute of audio (whisper-1)
    # No longer read: upstream bills audio of any length, so a transcription holds the longest
    # its own file can play (`admission.audio_min_bitrate`). Kept so that configs naming it load.
    max_audio_minutes: int = 30
    fine_tuning: FineTuningPrice = field(default_factory=FineTuningPrice)
    # Token-priced audio models: what the hold counts while the audio tokens are unknown. The
    # audio tokens a minute of uploaded audio reads (for as long as the file can play), and the
    # most audio tokens one character of speech input makes (at speed 1; slower holds more).
    audio_tokens_per_minute: int = 0
    audio_tokens_per_character: int = 0
    # The day upstream stops serving it (YYYY-MM-DD), and the model that serves its requests
    # from that day (see the `retirement` section).
    shutdown: str = ""
    successor: str = ""

    @property
    def priced(self) -> bool:
        """Whether any price is configured: a model without one is never served."""
        price = self.price
        return bool(
            price.input or price.output or price.audio_input or price.audio_output
            or self.image_prices or self.character_price or self.minute_price
        )  # fmt: skip

    def fine_tuned(self, name: str) -> ModelConfig:
        """A fine-tune of this base, `name` upstream: served as the base is (its limits, its
        capabilities), at the fine-tuned price, with no fallbacks (no other model has it)."""
        return dataclasses.replace(
            self, upstream=name, price=self.fine_tuning.price, fallbacks=(),
            fine_tuning=FineTuningPrice(),
        )  # fmt: skip


class Usd(int):
    """Money written in USD in YAML/JSON and held as integer micro-dollars."""


NO_MONEY = Usd(0)


@dataclass(frozen=True, slots=True)
class ModelLimits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    messages_per_week: int | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits for all models together, plus per-model ones; None means no such limit.

    `profile` names an entry of `limit_profiles` used as the base that explicit fields override.
    """

    profile: str = ""
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    models: dict[str, ModelLimits] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TierConfig:
    budget_usd: Usd = NO_MONEY
    limits: Limits = field(default_factory=Limits)
    # Models the tier may use; "*" is every configured model.
    models: tuple[str, ...] = ("*",)


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    enabled: bool = True
    # A hold never settled (gateway crashed) expires after this and is charged at its reserve.
    hold_ttl_s: float = 1800.0
    # Token limits count this completion budget when a request sets no max_(completion_)tokens;
    # the count is settled to the real usage afterwards. Budgets always reserve the model's max.
    default_completion_tokens: int = 1024
    # A stream whose caller left is stopped; upstream may generate this many tokens more before
    # it notices: charged beyond what the gateway saw (never more than the hold).
    left_stream_margin_tokens: int = 16
    # What each `service_tier` a chat or Responses request may name costs, in percent of the
    # standard price: held at that, and charged at the price of the tier the answer says served
    # it, which upstream bills. A request naming another tier is refused.
    # OpenAI (2026): flex 50%, priority 200%; "auto" (or none) is the project's default tier, so
    # its price must be that of the dearest tier the project may serve it at, or a charge can
    # pass the hold (and the budget).
    service_tiers: dict[str, int] = field(
        default_factory=lambda: {"auto": 100, "default": 100, "flex": 50, "priority": 200}
    )
    # When Redis is unreachable: "open" (in-process limiter) or "closed" (refuse with 503).
    rate_limits_on_redis_error: str = "open"
    budgets_on_redis_error: str = "closed"
    # How long a replica trusts its cached copy of a key or team (revocation takes this long).
    cache_ttl_s: float = 1.0
    # Teams and keys declared in YAML, loaded into the store at start ("" = none).
    teams_file: str = ""
    # The lowest bitrate (bits a second) of the audio upstream transcribes, assumed where the
    # gateway cannot read an upload's length from its container (fragmented MP4, another
    # codec in Ogg, WAV, MP4 or WebM): such a file is held as lasting its bytes at this rate.
    # 6 kb/s is Opus's lowest (and below any MP3, AAC or Vorbis encoder's).
    audio_min_bitrate: int = 6000
    # Serve callers that send no key (no Authorization header) as this team ("" = refuse them);
    # a key that is sent and fails is refused whatever this says. Simulate mode uses "sandbox"
    # when this is empty: no real money is at stake there.
    anonymous_team: str = ""


@dataclass(frozen=True, slots=True)
class ObservabilityConfig:
    # One JSON line per API request on stderr, written in batches (no secrets, no bodies).
    access_log: bool = True
    # Label gateway_requests_total with key ids too: one series per key, so off by default.
    key_id_labels: bool = False
    # Where every admin action is written, one JSON line each: a file path (appended to), or
    # "" for stderr, beside the gateway's log.
    audit_log: str = ""
    # OpenTelemetry traces, exported over OTLP/HTTP (JSON) to this collector's base URL (traces
    # go to its /v1/traces); "" = off, unless the standard OTEL_EXPORTER_OTLP_ENDPOINT or
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.
    otlp_endpoint: str = ""
    otel_service_name: str = "o1-gateway"  # OTEL_SERVICE_NAME wins when set
    # Prompts and answers on spans (gen_ai.input.messages, gen_ai.output.messages): off, since
    # they hold whatever callers send, personal data included.
    otel_capture_content: bool = False
    # Share of traces started here that are kept (0..1); a caller's sampled flag is followed.
    otel_sample_ratio: float = 1.0


GPT_4O: Final = "gpt-4o"
O1_MINI: Final = "o1-mini"
O1_PREVIEW: Final = "o1-preview"


@dataclass(frozen=True, slots=True)
class LineupRole:
    """The model playing one routing role, and the reasoning efforts it is given: spread, least
    first, over the role's band of difficulty (empty: the model's default)."""

    model: str = ""
    effort: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Lineup:
    """Models for the router's three roles: general chat, reasoning, the hardest reasoning."""

    as_of: str = ""  # the day its models, capabilities and prices were checked
    general: LineupRole = field(default_factory=LineupRole)
    reasoning: LineupRole = field(default_factory=LineupRole)
    hardest: LineupRole = field(default_factory=LineupRole)


#: The line-up of o1's launch, and the simulator's world: always defined.
O1_2024: Final = Lineup(
    as_of="2024-09-12",
    general=LineupRole(GPT_4O),
    reasoning=LineupRole(O1_MINI),
    hardest=LineupRole(O1_PREVIEW),
)
ROLES: Final = ("general", "reasoning", "hardest")


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Thresholds mapping the router's class probabilities to a role of a line-up, and so to a
    model (see `gateway.routing.heuristic`). Loading a config fills the models and efforts a
    policy leaves unset from its line-up."""

    #: the line-up whose models it routes to; "" = ``routing.lineup``
    lineup: str = ""
    #: the most expensive role it uses: ``reasoning`` never routes to the hardest role's model
    top_role: str = "hardest"
    #: the models of the general, reasoning and hardest roles ("": the line-up's)
    general_model: str = ""
    mini_model: str = ""
    preview_model: str = ""
    #: their reasoning efforts, least first (None: the line-up's)
    general_effort: tuple[str, ...] | None = None
    mini_effort: tuple[str, ...] | None = None
    preview_effort: tuple[str, ...] | None = None
    #: requests whose score, 1 - P(general), is at or above this go to ``mini_model``;
    #: ``None``: the value tuned with the router's weights.
    mini_threshold: float | None = None
    #: requests with P(hard-science) at or above this go to ``preview_model``; ``None``: the
    #: value tuned with the router's weights.
    preview_threshold: float | None = None
    #: only this many characters from the head and from the tail of a long text are examined.
    scan_chars: int = 4096
    #: share of the monthly budget already spent (0..1) from which :func:`step_down` moves
    #: requests one model cheaper; ``None`` disables it.
    step_down_at: float | None = None
    #: answers to requests routed by this policy are kept in the response cache (`cache`).
    cache: bool = False


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Model aliases that route each request by its difficulty (see `gateway.routing.heuristic`);
    the shipped config defines `auto`, `auto-cheap` and `auto-best`."""

    policies: dict[str, RoutingPolicy] = field(default_factory=dict)
    #: the line-up a policy routes to unless it names its own
    lineup: str = "o1-2024"


@dataclass(frozen=True, slots=True)
class RetirementConfig:
    """Models past their `shutdown` day (see `gateway.routing.retirement`)."""

    # Serve a retired model's requests with its successor; false: send them upstream as named.
    shield: bool = True
    # The day to judge by, YYYY-MM-DD; "": the simulator's day when simulating, else the clock's.
    today: str = ""
    # `o1-gateway models retiring` lists models shutting down within this many days.
    notice_days: int = 90


@dataclass(frozen=True, slots=True)
class CompatConfig:
    """Patching what a model lacks (see each model's `capabilities`)."""

    enabled: bool = True
    # SSE comments sent while a non-streaming model thinks, so idle proxies keep the stream open.
    keepalive_s: float = 5.0
    # How long a faked stream waits for the upstream before sending its 200: an upstream error
    # within this keeps its own status; after it, errors arrive in-stream.
    status_grace_s: float = 1.0
    # `max_tokens` on a reasoning model becomes `max_completion_tokens` of at least this much:
    # the model spends tokens thinking before it writes a word.
    reasoning_headroom_tokens: int = 4096
    # How long the client's view of a patched stored chat completion (`objects.chat_views`) is
    # kept: upstream's retention of stored completions, after which the view would be an
    # orphan (one upstream deletes sooner is dropped when upstream says it has none). Their
    # owner records are kept this long and a day (`objects.ownership`).
    stored_view_ttl_s: float = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class AllowedPath:
    """A path outside the endpoint table an operator lets through, and how it is charged."""

    method: str = "GET"
    path: str = ""  # a pattern, `{name}` for one path segment: /v1/vector_stores/{id}
    # usage: the usage it reports, at the price of the model that answered (a model without a
    # price is refused); free: counted against the request limits only.
    charge: str = "usage"
    # The teams it is open to; empty: every team.
    teams: tuple[str, ...] = ()
    # charge usage: the most one call may cost, held against the team's budget and charged when
    # the call ends without saying what it cost after upstream took it (lost, cut off, not
    # decodable). 0: nothing held, and such a call is charged nothing.
    hold_usd: Usd = NO_MONEY


@dataclass(frozen=True, slots=True)
class PassthroughConfig:
    """Paths outside the endpoint table are refused; these are let through as they are, with
    the gateway's upstream key: whatever they store upstream is shared by every team."""

    allow: tuple[AllowedPath, ...] = ()


@dataclass(frozen=True, slots=True)
class BatchesConfig:
    """Batches: held at creation (each line's worst case, at half price) for as long as they
    may run, and settled when they end, from their output file."""

    # How often the gateway asks upstream about the batches it follows.
    poll_s: float = 60.0
    # How long a batch's hold lives: its 24 h completion window and a margin.
    hold_s: float = 26 * 3600.0
    # The longest line of an input file the gateway reads (one request, its envelope and its
    # body, base64 images and all), in bytes: the file is priced as it is read, holding a line
    # at most at a time, never the file (up to 200 MB upstream).
    max_line_bytes: int = 16 * 1024 * 1024
    # The longest line of an output file the gateway reads when a batch ends (one whole
    # answer), in bytes: the file is priced as it is read, a line at most at a time. A longer
    # line's usage is not read: the batch is charged its hold, never less than upstream bills.
    max_output_line_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FineTuningConfig:
    """Fine-tuning jobs: held at creation (the training file's tokens times its epochs at the
    base's training price) for as long as they may run, and settled when they end, from the
    tokens they trained."""

    # How often the gateway asks upstream about the jobs it follows.
    poll_s: float = 60.0
    # How long a job's hold lives: OpenAI sets no limit on a job's run; a week covers a long
    # queue and a long run.
    hold_s: float = 7 * 86400.0
    # The epochs held for a job that leaves them to upstream (`"auto"` or absent): the worst
    # case assumed. OpenAI picks 3 for most files, more for small ones (which cost little).
    auto_epochs: int = 10
    # The longest line of a training file the gateway reads (one example, base64 images and
    # all), in bytes: the file is priced as it is read, a line at most at a time.
    max_line_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ResponsesConfig:
    """The Responses API: what the gateway keeps of the responses it serves."""

    # Responses served by translation (models without the Responses API upstream) are stored
    # in Redis for `GET`, `input_items` and `previous_response_id`; so is who owns each
    # response upstream stored. OpenAI keeps stored responses 30 days.
    store_ttl_s: float = 30 * 86400.0
    # How often the gateway asks upstream about the background responses it follows, to charge
    # each its usage once it ends (it holds the worst case until then).
    poll_s: float = 5.0


@dataclass(frozen=True, slots=True)
class HostedToolsConfig:
    """The Responses API's tools OpenAI runs itself, which it bills beside the response's tokens:
    held (their worst case) and charged (the calls the response made) at these prices. None:
    not configured, and a request with that tool is refused before it reaches upstream."""

    # USD per call (each `web_search_call` or `file_search_call` item of a response).
    web_search: Usd | None = None
    web_search_preview: Usd | None = None
    file_search: Usd | None = None
    # USD per image the image generation tool makes (each `image_generation_call` item): the
    # most one may cost, since neither the request nor the item says which image model, size
    # or quality made it (a stored prompt template may bring the tool).
    image_generation: Usd | None = None
    # USD per container of the default memory (1g) a response creates: the code interpreter's
    # (`container: {"type": "auto"}`) and a hosted shell's (`environment: container_auto`).
    code_interpreter: Usd | None = None
    shell: Usd | None = None
    # USD per container asking more memory (`memory_limit`), by limit: {"4g": ..., "16g": ...};
    # a limit not listed is refused.
    container_memory_prices: dict[str, Usd] = field(default_factory=dict)
    # The `max_tool_calls` the gateway adds to a request with priced tools that sets none, so
    # that its worst case is bounded.
    default_max_tool_calls: int = 8


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The exact response cache (chat completions and the Responses API), in Redis: off unless a
    team, a routing policy or the request's `x-gateway-cache` header turns it on."""

    # How long an answer is served from the cache.
    ttl_s: float = 3600.0
    # Answers larger than this (their stored form) are not kept.
    max_entry_bytes: int = 1024 * 1024
    # Share of the original answer's cost a hit is charged (0: hits are free).
    charge_fraction: float = 0.0
    # One scope for every team: a team may be served an answer another team paid for.
    shared: bool = False
    # Answers that call tools are kept too (a request may ask with `x-gateway-cache-tools: on`).
    cache_tools: bool = False
    # How long a request waits for an identical one in flight (elsewhere too) before it calls
    # upstream itself; o1 models can think for minutes.
    coalesce_wait_s: float = 600.0
    # The lock that says which replica calls upstream lives this long unless its holder renews
    # it: a replica that dies lets the waiters go after this.
    lock_ttl_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 10 * 1024 * 1024
    # A file upload's body (`POST /v1/files`), bounded apart: OpenAI takes files up to 512 MB,
    # and the bound of every other body kept that small keeps chat requests from being that
    # large. One over max_body_bytes that declares its length is sent on as it arrives, never
    # held whole (with the http1 client; see README).
    max_upload_bytes: int = 512 * 1024 * 1024
    # Bearer key of the /admin API (GATEWAY_ADMIN_KEY), at least MIN_SECRET_CHARS long;
    # empty turns the admin API off.
    admin_key: str = ""
    # A wrong admin or metrics key delays the next attempt from the same client address this
    # long, doubling per failure (gateway.admission.auth_backoff).
    auth_failure_delay_s: float = 0.5
    # /metrics shows every team's name, budget and spend. On the API port it needs this bearer
    # key (GATEWAY_METRICS_KEY); with neither key nor metrics port it is not served at all.
    metrics_key: str = ""
    # A listener that serves GET /metrics alone, without a key: bind it where only monitoring
    # reaches it. With one, the API port never serves /metrics. 0 = none; "" host = `host`.
    metrics_port: int = 0
    metrics_host: str = ""
    # On SIGTERM: stop accepting, let requests and streams in flight finish for this long
    # (o1 calls think for minutes), then settle every hold (up to 10 s more) and exit. With
    # Kubernetes' preStop sleep of 10 s this fits terminationGracePeriodSeconds: 120.
    shutdown_timeout_s: float = 100.0
    # Chat requests beyond these get a 400 before any work is spent on them
    # (gateway.wire.validation).
    max_messages: int = 2048
    # Levels of objects and arrays in a chat body; every later step walks the payload.
    max_json_depth: int = 64
    # A request's head (request line and headers). uvicorn with httptools sets no limit; 32 KiB
    # is what nginx's default buffers allow. Larger gets 431, and is never held in memory.
    max_header_bytes: int = 32 * 1024
    # A request's head must have arrived this long after its first byte (a new connection's
    # first request: after the connection opened); else 408 and the connection is closed.
    header_timeout_s: float = 10.0
    # The longest silence while a request body arrives; then 408 and the connection is closed.
    # Below shutdown_timeout_s, so that a stalled upload cannot hold a shutdown.
    body_timeout_s: float = 30.0
    # An idle keep-alive connection is closed after this long: longer than clients keep theirs
    # (httpx: 5 s) and than load balancers in front (often 60 s), so that the gateway is not
    # the side closing a connection just as a request is sent on it.
    keep_alive_timeout_s: float = 75.0
    # The longest a response may wait for its client to take what was written (the socket's
    # buffers full); then the connection is dropped. A client that stops reading without closing
    # would otherwise hold its stream's upstream connection, team slot and hold forever.
    write_timeout_s: float = 60.0
    # Open connections per worker process; beyond it a new one is answered 503 and closed.
    max_connections: int = 4096
    # Requests one team may have in flight per worker process; beyond it 429. Below the
    # upstream pool, so that one team's slow calls cannot take every upstream connection and
    # queue every other team's calls behind them: three quarters of it leave the other teams
    # a quarter, and one team alone most of it. 0 = no bound.
    max_team_requests: int = 768


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    base_url: str = DEFAULT_BASE_URL
    api_key: str = ""
    organization: str = ""
    project: str = ""
    client: str = "http1"
    # Extra client header name prefixes forwarded upstream (beyond content-type, accept,
    # openai-beta, idempotency-key, user-agent and x-stainless-*).
    forward_header_prefixes: tuple[str, ...] = ()
    # Relay the upstream's x-ratelimit-* headers, renamed x-upstream-ratelimit-*: they tell
    # every team how much of the shared key's limits all teams together have left.
    relay_ratelimit_headers: bool = False
    # Chat and Responses calls carry a `safety_identifier` per team (a keyed hash, never the
    # team's name) so OpenAI's abuse controls tell teams apart; the key of that hash, and of
    # the one that makes a client's Idempotency-Key its team's own upstream.
    safety_salt: str = "o1-gateway"
    pool_size: int = 1024
    # A PEM bundle of certificates trusted besides the system's store (a private CA, or the one
    # a TLS-inspecting egress proxy signs with).
    ca_file: str = ""
    # An http:// proxy for upstream calls ("" = the environment's https_proxy/HTTPS_PROXY or
    # http_proxy/HTTP_PROXY); https upstreams are tunnelled through it with CONNECT; hosts in
    # no_proxy/NO_PROXY go direct.
    proxy: str = ""
    connect_timeout_s: float = 10.0
    # o1 models think for minutes before the first byte (non-streamed: before the whole answer).
    first_byte_timeout_s: float = 900.0
    # The longest silence between two chunks of a response body.
    read_timeout_s: float = 900.0
    # A whole upstream call, streams included.
    total_timeout_s: float = 3600.0
    # Retries of failed tries (connection errors, timeouts, 429, 5xx) before anything reached
    # the client, with jittered exponential backoff; an upstream retry-after is honoured up to
    # retry_after_max_s, and never past the client's own deadline (x-stainless-timeout).
    retries: int = 2
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 8.0
    retry_after_max_s: float = 20.0
    # Circuit breaker per model and deployment: this many failures in a row open it; after
    # the cooldown one probe call decides whether it closes.
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = ""
    # A Redis Cluster: `url` names any one node; the client discovers the rest.
    cluster: bool = False
    pool_size: int = 256
    timeout_s: float = 1.0
    # Without `url`: where `o1-gateway serve` keeps the store it starts itself (a redis-server
    # from PATH, its data in an append-only file here); empty: an in-memory store instead.
    embedded_dir: str = "~/.local/state/o1-gateway"


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    api_keys: tuple[str, ...] = ("sk-simulated-upstream",)
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    chunk_interval_ms: float = 0.0
    # How many received requests the simulator remembers for GET /_sim/requests; 0 = off.
    request_log: int = 0
    # Let request headers (x-sim-*) set latency and inject faults; tests and load tools use it.
    header_knobs: bool = True
    rpm_limit: int = 10_000
    tpm_limit: int = 30_000_000
    # The simulator's calendar (ISO date): which models are released and which are shut down.
    # The o1 launch era it reproduces by default; never the wall clock, so runs repeat.
    today: str = "2024-10-01"


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    models: dict[str, ModelConfig] = field(default_factory=dict)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    compat: CompatConfig = field(default_factory=CompatConfig)
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    hosted_tools: HostedToolsConfig = field(default_factory=HostedToolsConfig)
    passthrough: PassthroughConfig = field(default_factory=PassthroughConfig)
    batches: BatchesConfig = field(default_factory=BatchesConfig)
    fine_tuning: FineTuningConfig = field(default_factory=FineTuningConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    lineups: dict[str, Lineup] = field(default_factory=dict)
    retirement: RetirementConfig = field(default_factory=RetirementConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    tiers: dict[str, TierConfig] = field(default_factory=dict)
    limit_profiles: dict[str, Limits] = field(default_factory=dict)
    simulate: bool = False

    def model(self, name: str) -> ModelConfig | None:
        return self.models.get(name)
