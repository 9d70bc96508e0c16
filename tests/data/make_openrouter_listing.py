"""Writes openrouter_models_500.json: a 500-entry `GET /api/v1/models` reply in OpenRouter's documented
format (fields as in its 2025 listings plus `canonical_slug`), deterministic (seeded), with the edge
cases the rules care about. Run: python tests/data/make_openrouter_listing.py

Contents (the tests assert these numbers):
- 500 entries: 497 parseable, 3 broken (no id; a numeric id; a price "abc");
- 60 `:free` ids priced "0"/"0" -> free; 1 `:free` id priced non-zero -> NOT free;
- 5 zero-priced ids without `:free` -> not free; openrouter/auto priced "-1" and openrouter/free "0" -> not free;
- 4 image-output models, 2 embedding models; everything else paid text models.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("openrouter_models_500.json")
AUTHORS = ["openai", "anthropic", "google", "meta-llama", "mistralai", "qwen", "deepseek", "cohere", "x-ai", "nousresearch",
           "microsoft", "amazon", "nvidia", "thudm", "moonshotai", "z-ai"]
PARAMS = ["max_tokens", "temperature", "top_p", "stop", "frequency_penalty", "presence_penalty", "seed", "tools",
          "tool_choice", "response_format", "structured_outputs", "reasoning", "include_reasoning", "top_k"]


def entry(rng: random.Random, mid: str, prompt: str, completion: str, outputs: list[str] | None = None,
          inputs: list[str] | None = None) -> dict:
    inputs = inputs or (["text", "image"] if rng.random() < 0.3 else ["text"])
    outputs = outputs or ["text"]
    ctx = rng.choice([8192, 32768, 65536, 131072, 200000, 1048576])
    return {
        "id": mid,
        "canonical_slug": mid.split(":", 1)[0] + f"-2025{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
        "hugging_face_id": "" if rng.random() < 0.5 else mid.split(":", 1)[0],
        "name": mid.split("/", 1)[-1].replace("-", " ").title(),
        "created": 1700000000 + rng.randint(0, 60_000_000),
        "description": "A model listed for the AFMTS parse tests. " * rng.randint(1, 6),
        "context_length": ctx,
        "architecture": {"modality": f"{'+'.join(inputs)}->{'+'.join(outputs)}", "input_modalities": inputs,
                         "output_modalities": outputs, "tokenizer": rng.choice(["GPT", "Llama3", "Other", "Claude"]),
                         "instruct_type": rng.choice([None, "chatml", "llama3"])},
        "pricing": {"prompt": prompt, "completion": completion, "request": "0", "image": "0", "web_search": "0",
                    "internal_reasoning": "0", "input_cache_read": "0"},
        "top_provider": {"context_length": ctx, "max_completion_tokens": rng.choice([None, 4096, 8192, 16384, 65536]),
                         "is_moderated": rng.random() < 0.3},
        "per_request_limits": None,
        "supported_parameters": sorted(rng.sample(PARAMS, rng.randint(3, len(PARAMS)))),
        "default_parameters": {},
        "expiration_date": None,
    }


def price(rng: random.Random) -> str:
    return f"{rng.choice([1, 2, 3, 5, 8, 15, 25, 60, 150, 300]) * 1e-8:.10f}".rstrip("0")


def build() -> dict:
    rng = random.Random(20260523)
    data: list[dict] = []
    for i in range(60):
        data.append(entry(rng, f"{rng.choice(AUTHORS)}/free-model-{i}:free", "0", "0"))
    data.append(entry(rng, "nousresearch/priced-but-named:free", "0.0000001", "0.0000002"))
    for i in range(5):
        data.append(entry(rng, f"google/zero-priced-exp-{i}", "0", "0"))
    data.append(entry(rng, "openrouter/auto", "-1", "-1"))
    data.append(entry(rng, "openrouter/free", "0", "0"))
    for i in range(4):
        data.append(entry(rng, f"google/image-gen-{i}", price(rng), price(rng), ["image", "text"], ["text", "image"]))
    for i in range(2):
        data.append(entry(rng, f"openai/text-embedding-{i}", price(rng), "0", ["embeddings"], ["text"]))
    while len(data) < 497:
        n = len(data)
        data.append(entry(rng, f"{rng.choice(AUTHORS)}/paid-model-{n}", price(rng), price(rng)))
    broken_id = entry(rng, "x/missing-id", "0.000001", "0.000002")
    del broken_id["id"]
    numeric_id = entry(rng, "x/numeric", "0.000001", "0.000002")
    numeric_id["id"] = 12345
    bad_price = entry(rng, "x/bad-price", "abc", "0.000002")
    data += [broken_id, numeric_id, bad_price]
    rng.shuffle(data)
    return {"data": data}


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {OUT} ({len(build()['data'])} entries)")
