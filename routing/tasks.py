"""The seeds' task API (AITaskDistributor.routeTask, executeWithFallback): a task with a type and an
input is turned into a prompt and run by the best model — or by an agent that declares the task's
type — with fallbacks tried in order, exactly as the gateway fails over.

Order of executors: the task's explicit `fallbacks` (model ids, aliases, policies, or
`agent:<name>`) when given; otherwise online agents that declare the task type (specialists first),
then the router's candidates for the task's capability.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings

from afmts import urlpolicy
from afmts.logging import sanitize
from registry.models import Agent, AgentStatus
from registry.providers.errors import ProviderError
from registry.providers.http import max_reply_bytes, policy_transport, read_capped

# Task types and the capability a model needs for them; types no model declares fall back to
# text-generation (every chat model can summarize or translate).
CAPABILITY = {
    "text-generation": "text-generation", "code-generation": "code-generation", "code-review": "code-generation",
    "summarization": "summarization", "translation": "translation", "reasoning": "reasoning",
    "analysis": "text-generation", "vision": "vision",
}


def prompt_for(task: dict[str, Any]) -> str:
    kind = task.get("type", "text-generation")
    text = str(task.get("input") or "")
    description = str(task.get("description") or "")
    if kind == "translation":
        source = task.get("fromLanguage") or "the source language"
        target = task.get("toLanguage") or "English"
        return f"Translate the following text from {source} to {target}. Reply with the translation only.\n\n{text}"
    if kind == "summarization":
        style = f" in a {task['style']} style" if task.get("style") else ""
        return f"Summarize the following text{style}.\n\n{text or description}"
    if kind in ("code-generation", "code-review"):
        language = task.get("language") or ""
        code = f"\n\n```{language}\n{text}\n```" if text else ""
        return (description or "Write the code.") + code
    return "\n\n".join(part for part in (description, text) if part) or "Hello"


@dataclass
class Attempt:
    executor: str
    ok: bool
    error: str = ""
    ms: float = 0.0


@dataclass
class TaskResult:
    task_id: str
    type: str
    result: Any = None
    model_used: str = ""
    provider: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    latency_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "taskId": self.task_id, "type": self.type, "result": self.result, "modelUsed": self.model_used,
            "provider": self.provider, "usage": self.usage, "latencyMs": round(self.latency_ms, 2),
            "attempts": [{"executor": a.executor, "ok": a.ok, "error": a.error, "ms": round(a.ms, 2)} for a in self.attempts],
        }


class TaskFailed(Exception):
    def __init__(self, result: TaskResult, status: int, message: str):
        super().__init__(message)
        self.result, self.status, self.message = result, status, message


def agents_for(kind: str) -> list[Agent]:
    return [
        a for a in Agent.objects.filter(status=AgentStatus.ONLINE).exclude(endpoint="").order_by("name")
        if kind in (a.capabilities or [])
    ]


async def call_agent(agent: Agent, task: dict[str, Any]) -> Any:
    """POST the task to the agent's endpoint, through the outbound URL policy (an agent is checked
    as a hosted kind), no redirects, the reply capped. Raises httpx.HTTPError or ValueError (a
    refused URL is a urlpolicy.Refused, a ValueError)."""
    urlpolicy.check_url(agent.endpoint, kind=urlpolicy.AGENT)
    async with httpx.AsyncClient(timeout=settings.AFMTS_AGENT_CALL_SECONDS, trust_env=False,
                                 transport=policy_transport(urlpolicy.AGENT), follow_redirects=False) as client:
        async with client.stream("POST", agent.endpoint, json=task) as response:
            response.raise_for_status()
            try:
                body = await read_capped(response.aiter_bytes(), response.headers.get("content-length"),
                                         max_reply_bytes(), "agent")
            except ProviderError as exc:
                raise ValueError(f"agent reply refused: {exc.message}") from None
        return json.loads(body)


async def run_task(task: dict[str, Any], *, principal, agents: list[Agent]) -> TaskResult:
    """Run a task through its executors in order; the first success wins."""
    from analytics.recorder import Outcome, recorder
    from routing.gateway.engine import Call, GatewayError, attempt
    from routing.gateway.requests import requirements
    from routing.gateway.runtime import runtime
    from routing.router import UnknownModel, plan

    started = time.perf_counter()
    kind = task.get("type") or "text-generation"
    result = TaskResult(task_id=str(task.get("id") or f"task_{uuid.uuid4().hex[:16]}"), type=kind)
    messages = [{"role": "user", "content": prompt_for(task)}]
    if task.get("system"):
        messages.insert(0, {"role": "system", "content": str(task["system"])})
    body: dict[str, Any] = {"messages": messages}
    if task.get("maxTokens"):
        body["max_tokens"] = int(task["maxTokens"])
    view = await runtime.view(background=False)
    wanted = CAPABILITY.get(kind, kind)
    if not any(wanted in m.capabilities for m in view.snap.ranked["auto"]):
        wanted = "text-generation"
    reqs = task.get("requirements") or {}
    capabilities = [wanted, *(reqs.get("capabilities") or [])]

    executors: list[tuple[str, Any]] = []
    named = task.get("fallbacks") or []
    if named:
        for name in named:
            if str(name).startswith("agent:"):
                match = [a for a in agents if a.name == str(name)[6:]]
                executors.append(("agent", match[0] if match else str(name)[6:]))
            else:
                executors.append(("model", str(name)))
    else:
        executors += [("agent", a) for a in agents if kind in (a.capabilities or [])]
        executors.append(("model", task.get("model") or ("free" if reqs.get("freeOnly") else "auto")))

    for what, target in executors:
        t0 = time.perf_counter()
        if what == "agent":
            if isinstance(target, str):
                result.attempts.append(Attempt(f"agent:{target}", False, "no such online agent with an endpoint"))
                continue
            try:
                answer = await call_agent(target, {**task, "id": result.task_id})
            except (httpx.HTTPError, ValueError) as exc:
                result.attempts.append(Attempt(f"agent:{target.name}", False, sanitize(f"{type(exc).__name__}: {exc}", 300),
                                               (time.perf_counter() - t0) * 1000))
                continue
            result.attempts.append(Attempt(f"agent:{target.name}", True, ms=(time.perf_counter() - t0) * 1000))
            result.result, result.model_used, result.provider = answer, f"agent:{target.name}", "agent"
            break
        headers = {"x-afmts-capabilities": ",".join(capabilities)}
        if reqs.get("maxCostPerToken") is not None:
            headers["x-afmts-max-price"] = str(float(reqs["maxCostPerToken"]) * 1_000_000)
        if reqs.get("provider"):
            headers["x-afmts-prefer-providers"] = str(reqs["provider"])
        call = Call(request_id=result.task_id, endpoint="tasks.route", requested_model=target, body=body,
                    started=t0, deadline=t0 + settings.AFMTS_GATEWAY_DEADLINE_SECONDS)
        call.outcome = Outcome(ts=time.time(), request_id=result.task_id, endpoint="tasks.route",
                               requested_model=target, key_id=principal.key_id, key_name=principal.name)
        try:
            p = plan(target, requirements(body, headers), view.snap, live=runtime.live, now=time.time(),
                     aliases=view.aliases, max_candidates=settings.AFMTS_GATEWAY_MAX_ATTEMPTS)
            reply = await attempt(call, p, view, method="chat")
        except UnknownModel:
            result.attempts.append(Attempt(target, False, "not in the registry"))
            continue
        except GatewayError as exc:
            result.attempts.append(Attempt(target, False, exc.message[:300], (time.perf_counter() - t0) * 1000))
            if exc.status == 400:
                raise TaskFailed(result, 400, exc.message) from exc
            continue
        finally:
            if call.attempts:  # what the models were sent is usage like any gateway request
                call.outcome.attempts = call.attempts
                call.outcome.latency_ms = (time.perf_counter() - t0) * 1000
                recorder.add(call.outcome)
        result.attempts.append(Attempt(call.served_by.public_id, True, ms=(time.perf_counter() - t0) * 1000))
        message = (reply.get("choices") or [{}])[0].get("message") or {}
        result.result = message.get("content")
        result.model_used, result.provider = call.served_by.public_id, call.served_by.provider
        result.usage = reply.get("usage") or {}
        break
    result.latency_ms = (time.perf_counter() - started) * 1000
    if not result.model_used:
        reasons = "; ".join(f"{a.executor}: {a.error}" for a in result.attempts) or "no executor"
        raise TaskFailed(result, 503, f"No model or agent could run this {kind} task: {reasons}")
    return result
