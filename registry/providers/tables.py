"""Knowledge kept as data, not code: the dated free-tier table and the dated price table.

Both ship next to this module; operators replace them by pointing the settings AFMTS_FREE_TIERS_FILE
and AFMTS_PRICES_FILE at their own copies (same format). Files are read once per path."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

HERE = Path(__file__).resolve().parent
# As strings: a listing looks the tables up for each of its models, and joining a Path each time
# cost more than the look-up.
FREE_TIERS_FILE, PRICES_FILE = str(HERE / "free_tiers.json"), str(HERE / "prices.json")
# A dated snapshot id ("gpt-4o-2024-08-06", "claude-sonnet-4-5-20250929") costs what its family costs.
_DATED = re.compile(r"^-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


@dataclass(frozen=True, slots=True)
class FreeTier:
    reason: str
    quota: dict[str, int | None]
    scope: str


@dataclass(frozen=True, slots=True)
class Price:
    input: Decimal | None
    output: Decimal | None
    context_window: int | None = None
    max_output_tokens: int | None = None


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def free_tiers() -> dict[str, Any]:
    return _load(str(settings.AFMTS_FREE_TIERS_FILE or FREE_TIERS_FILE))


def prices() -> dict[str, Any]:
    return _load(str(settings.AFMTS_PRICES_FILE or PRICES_FILE))


def _quota(values: dict[str, Any] | None) -> dict[str, int | None]:
    quota: dict[str, int | None] = {"rpm": None, "rpd": None, "tpm": None, "tpd": None}
    quota.update(values or {})
    return quota


def provider_free_info(kind: str) -> dict[str, Any]:
    return free_tiers().get("providers", {}).get(kind, {})


def free_tier(kind: str, model_id: str, host: str | None = None) -> FreeTier | None:
    """The free tier the table gives this model, or None when the table says nothing free about it.
    An entry under "hosts" (an OpenAI-compatible upstream known by its host name) wins over the kind."""
    info = free_tiers().get("hosts", {}).get(host or "") or provider_free_info(kind)
    if not info:
        return None
    scope = info.get("scope", "model")
    reason = info.get("reason") or f"{kind} free tier"
    for entry in info.get("models", ()):
        if fnmatchcase(model_id, entry["pattern"]):
            return FreeTier(reason, _quota(entry.get("quota")), scope)
    if info.get("all_models_free"):
        return FreeTier(reason, _quota(info.get("default")), scope)
    return None


def price(kind: str, model_id: str) -> Price | None:
    table = prices().get("providers", {}).get(kind)
    if not table:
        return None
    entry = table.get(model_id)
    if entry is None:
        best = ""
        for key in table:
            if model_id.startswith(key) and len(key) > len(best) and _DATED.match(model_id[len(key):]):
                best = key
        entry = table.get(best) if best else None
    if entry is None:
        return None

    def dec(value: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    return Price(dec(entry.get("input")), dec(entry.get("output")), entry.get("context_window"),
                 entry.get("max_output_tokens"))


def clear_cache() -> None:
    _load.cache_clear()
