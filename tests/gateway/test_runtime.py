"""What a serving process does so that its event loop is not stalled by work in other threads:
the heap of start-up is out of the cyclic collector's reach once the gateway serves, and another
thread holding the GIL hands it back to the loop within GIL_SWITCH_SECONDS."""

from __future__ import annotations

import gc
import sys

import httpx

from routing.gateway.runtime import GIL_SWITCH_SECONDS

FREE = {"model_id": "llama-3.1-8b-instant", "is_free": True, "latency_ms": 100, "reliability": 0.99}


def test_serving_freezes_the_start_up_heap_so_collections_walk_only_new_objects(gateway, provider, user_secret):
    provider("groq", models=[FREE])

    reply = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {user_secret}"},
                       json={"model": "free", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)

    assert reply.status_code == 200, reply.text
    # Django, the apps, the URL patterns and the first view: tens of thousands of objects a full
    # collection no longer walks.
    assert gc.get_freeze_count() > 20_000


def test_serving_hands_the_gil_back_to_the_event_loop_within_a_millisecond(gateway, provider, user_secret):
    provider("groq", models=[FREE])

    httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {user_secret}"},
               json={"model": "free", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)

    assert sys.getswitchinterval() == GIL_SWITCH_SECONDS <= 0.001


def test_another_loop_asking_for_the_view_leaves_the_gateways_background_work_alone(gateway, provider, user_secret):
    """An async Django view (the task route, the playground) may ask from another loop: it gets the
    view, and the gateway's loop keeps its watcher (they used to swap loops and share one lock)."""
    import asyncio

    from asgiref.sync import sync_to_async

    from routing.gateway.runtime import runtime

    provider("groq", models=[FREE])
    httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {user_secret}"},
               json={"model": "free", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
    serving = runtime._loop

    async def ask_twice():
        await runtime.view()
        add = sync_to_async(provider, thread_sensitive=False)
        await add("cerebras", models=[{"model_id": "llama3.1-8b", "is_free": True}])  # the view goes stale
        return await runtime.view()

    view = asyncio.run(ask_twice())

    assert "cerebras/llama3.1-8b" in view.snap.by_public_id
    assert runtime._loop is serving and not serving.is_closed()
    reply = httpx.post(f"{gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {user_secret}"},
                       json={"model": "free", "messages": [{"role": "user", "content": "hi"}]}, timeout=10)
    assert reply.status_code == 200, reply.text
