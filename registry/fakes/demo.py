"""A little life for the demo providers (`make run`), so a new user sees the tracker at work
within a minute: a promotional model on OpenRouter turns free and back, a preview model comes and
goes on Groq, and one Cerebras model has bouts of failures, so its health moves."""

from __future__ import annotations

import asyncio
import copy

from registry.fakes import catalog
from registry.fakes.server import State

PERIOD = 40.0  # seconds between changes: more than one discovery cycle (30 s) apart
PROMO = "acme/promo-model:free"
PREVIEW = "preview-model-2"
FLAKY = "qwen-3-32b"


def promo_entry() -> dict:
    entry = copy.deepcopy(catalog.OPENROUTER[0])
    entry.update(id=PROMO, canonical_slug="acme/promo-model", name="Acme: Promo Model",
                 description="A model that is free some of the time (demo).")
    return entry


def preview_entry() -> dict:
    return {**copy.deepcopy(catalog.GROQ[0]), "id": PREVIEW}


def step(state: State, n: int) -> str:
    """Apply the n-th change; returns what changed (for the log)."""
    if n % 3 == 0:
        free = n % 2 == 0
        pricing = {"prompt": "0", "completion": "0"} if free else {"prompt": "0.0000002", "completion": "0.0000004"}
        state.change_listing("openrouter", add=[promo_entry()], patch={PROMO: {"pricing": pricing}})
        return f"{PROMO} is {'free' if free else 'paid'}"
    if n % 3 == 1:
        present = n % 2 == 1
        if present:
            state.change_listing("groq", add=[preview_entry()])
        else:
            state.change_listing("groq", remove=[PREVIEW])
        return f"{PREVIEW} {'listed' if present else 'gone'}"
    state.push("cerebras", "server_error", count=3)
    return f"{FLAKY} fails for a while"


async def run(state: State, period: float = PERIOD) -> None:
    n = 0
    while True:
        print(f"[demo] {step(state, n)}", flush=True)
        n += 1
        await asyncio.sleep(period)
