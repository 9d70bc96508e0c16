"""Adapter translation cost, no network: parse a 500-model OpenRouter listing (target < 20 ms) and,
per adapter, build one chat request + decode and parse one reply (target < 100 µs), plus replaying a streamed
reply through the stream parser (per chunk). Prints a table.

Run: .venv/bin/python bench/adapters.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "afmts.settings")

import django  # noqa: E402

django.setup()

from registry.fakes import wire  # noqa: E402
from registry.providers import ADAPTERS, adapter_class  # noqa: E402

LISTING = ROOT / "tests" / "data" / "openrouter_models_500.json"
REQUEST = {
    "model": "m",
    "messages": [{"role": "system", "content": "You are terse."},
                 {"role": "user", "content": "What is 1231 * 2331? Answer with the number only."}],
    "temperature": 0.2, "max_tokens": 256, "tools": [{"type": "function", "function": {
        "name": "multiply", "description": "Multiply two numbers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                       "required": ["a", "b"]}}}],
}


def best_of(fn, repeat: int, number: int) -> float:
    """Median over `repeat` rounds of the mean seconds per call over `number` calls."""
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - start) / number)
    return statistics.median(rounds)


def reply_for(kind: str) -> tuple[dict, bytes]:
    script = wire.script_for(kind if kind in ("anthropic", "gemini", "ollama") else "openai",
                             {"messages": [{"role": "user", "content": "hi there"}]}, "m")
    if kind == "anthropic":
        return wire.anthropic_reply(script), b"".join(wire.anthropic_frames(script))
    if kind == "gemini":
        return wire.gemini_reply(script), b"".join(wire.gemini_frames(script, sse=False))
    if kind == "ollama":
        return wire.ollama_reply(script), b"".join(wire.ollama_frames(script))
    return wire.oai_reply(kind, script), b"".join(wire.oai_frames(kind, script, include_usage=True))


def main() -> None:
    raw = LISTING.read_bytes()
    payload = json.loads(raw)
    openrouter = adapter_class("openrouter")()
    parse_ms = best_of(lambda: openrouter.parse_listing(payload), 7, 5) * 1e3
    load_ms = best_of(lambda: openrouter.parse_listing(json.loads(raw)), 7, 5) * 1e3
    n = len(openrouter.parse_listing(payload).models)
    print(f"OpenRouter listing, {len(payload['data'])} entries ({n} parsed)")
    print(f"  parse_listing               {parse_ms:7.2f} ms   (target < 20 ms)")
    print(f"  json.loads + parse_listing  {load_ms:7.2f} ms")
    print()
    print(f"{'adapter':18} {'build_chat':>11} {'parse_chat':>11} {'build+parse':>12} {'stream/chunk':>13}  target")
    for kind in sorted(ADAPTERS):
        adapter = adapter_class(kind)(api_key="k")
        reply, stream = reply_for(kind)
        chunks = len(adapter.parse_stream(stream, REQUEST))
        build = best_of(lambda a=adapter: a.build_chat(REQUEST), 7, 2000) * 1e6
        body = json.dumps(reply).encode()
        # parse = decoding the reply bytes + translating them (the adapter does both per reply)
        parse = best_of(lambda a=adapter, b=body: a.parse_chat(json.loads(b), REQUEST), 7, 2000) * 1e6
        per_chunk = best_of(lambda a=adapter, s=stream: a.parse_stream(s, REQUEST), 7, 300) * 1e6 / chunks
        total = build + parse
        print(f"{kind:18} {build:9.1f}µs {parse:9.1f}µs {total:10.1f}µs {per_chunk:11.1f}µs  "
              f"{'ok' if total < 100 else 'OVER'} (< 100 µs)")


if __name__ == "__main__":
    main()
