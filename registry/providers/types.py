"""The normalized shapes every adapter produces: model records, listings and rate-limit state."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

ModelType = Literal["llm", "chat", "embedding", "vision", "image", "audio", "rerank"]
MODEL_TYPES: tuple[str, ...] = ("llm", "chat", "embedding", "vision", "image", "audio", "rerank")
QUOTA_KEYS: tuple[str, ...] = ("rpm", "rpd", "tpm", "tpd")


def empty_quota() -> dict[str, int | None]:
    return dict.fromkeys(QUOTA_KEYS)


@dataclass(slots=True)
class ModelRecord:
    """One model as a provider lists it. Prices are USD per million tokens; None means unknown
    (neither free nor $0). `quota` holds rpm/rpd/tpm/tpd (None when unknown) and may carry extra
    windows (e.g. `tokens_per_month`); `quota_scope` says whether it is per model or per account."""

    id: str
    name: str
    type: str = "chat"
    capabilities: list[str] = field(default_factory=list)
    context_window: int | None = None
    max_output_tokens: int | None = None
    input_price: Decimal | None = None
    output_price: Decimal | None = None
    is_free: bool = False
    free_reason: str | None = None
    quota: dict[str, int | None] = field(default_factory=empty_quota)
    quota_scope: str = "model"
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class RateLimitWindow:
    """One limit the provider reports: `limit` and `remaining` in requests or tokens, `reset` in
    seconds from the moment the headers were read."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None


@dataclass(slots=True)
class RateLimitInfo:
    """Rate-limit state read from one response. `windows` is keyed "<what>/<period>": what is
    requests, tokens, input-tokens, output-tokens; period is minute, hour, day, month or "?" when
    the provider does not say (OpenAI's plain x-ratelimit-* are per minute, Groq's requests are per day:
    each adapter declares its own)."""

    windows: dict[str, RateLimitWindow] = field(default_factory=dict)
    retry_after: float | None = None
    source: str = "headers"

    def window(self, what: str, period: str | None = None) -> RateLimitWindow | None:
        if period is not None:
            return self.windows.get(f"{what}/{period}")
        for key, win in self.windows.items():
            if key.split("/", 1)[0] == what:
                return win
        return None

    def remaining(self, what: str, period: str | None = None) -> int | None:
        win = self.window(what, period)
        return win.remaining if win else None

    def limit(self, what: str, period: str | None = None) -> int | None:
        win = self.window(what, period)
        return win.limit if win else None

    def __bool__(self) -> bool:
        return bool(self.windows) or self.retry_after is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Listing:
    """A provider's parsed model list: the records, how many entries were skipped as unparseable,
    and the rate-limit state the listing call reported (listing calls cost no quota)."""

    models: list[ModelRecord] = field(default_factory=list)
    skipped: int = 0
    rate_limit: RateLimitInfo | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def free(self) -> list[ModelRecord]:
        return [m for m in self.models if m.is_free]

    def by_id(self) -> dict[str, ModelRecord]:
        return {m.id: m for m in self.models}

    def __len__(self) -> int:
        return len(self.models)
