"""Incremental stream framing: bytes in, frames out, nothing buffered beyond one partial frame.

Three framings reach us: Server-Sent Events (OpenAI-style `data:` lines ending with `[DONE]`, Anthropic's
`event:` + `data:` pairs with trailing spaces, OpenRouter's `: comment` keep-alives), NDJSON (Ollama) and
one JSON array sent in pieces (Gemini without `alt=sse`)."""

from __future__ import annotations

import json
from typing import Any

_decoder = json.JSONDecoder()


class SSEDecoder:
    """Feed bytes, get (event, data) pairs for each complete event. Comment lines are dropped."""

    def __init__(self) -> None:
        self._buf = ""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes | str) -> list[tuple[str | None, str]]:
        self._buf += chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
        out: list[tuple[str | None, str]] = []
        while True:
            pos = self._buf.find("\n")
            if pos < 0:
                break
            line = self._buf[:pos].rstrip("\r")
            self._buf = self._buf[pos + 1 :]
            self._line(line, out)
        return out

    def close(self) -> list[tuple[str | None, str]]:
        out: list[tuple[str | None, str]] = []
        if self._buf:
            self._line(self._buf.rstrip("\r"), out)
            self._buf = ""
        self._line("", out)
        return out

    def _line(self, line: str, out: list[tuple[str | None, str]]) -> None:
        if not line:
            if self._data:
                out.append((self._event, "\n".join(self._data)))
            self._event, self._data = None, []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


class NDJSONDecoder:
    """Feed bytes, get one parsed object per complete line (Ollama's streaming)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Any]:
        self._buf += chunk
        out = []
        while True:
            pos = self._buf.find(b"\n")
            if pos < 0:
                break
            line, self._buf = self._buf[:pos].strip(), self._buf[pos + 1 :]
            if line:
                out.append(json.loads(line))
        return out

    def close(self) -> list[Any]:
        line, self._buf = self._buf.strip(), b""
        return [json.loads(line)] if line else []


class JSONArrayDecoder:
    """Feed the pieces of one JSON array (`[{…}\\n,\\r\\n{…}\\n]`), get each element once it is complete."""

    def __init__(self) -> None:
        self._buf = ""
        self._started = False
        self.finished = False

    def feed(self, chunk: bytes | str) -> list[Any]:
        self._buf += chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
        out = []
        while True:
            text = self._buf.lstrip(" \t\r\n,")
            if not self._started:
                if not text:
                    self._buf = text
                    break
                if text[0] != "[":
                    raise ValueError("expected a JSON array")
                self._started = True
                text = text[1:].lstrip(" \t\r\n,")
            if text.startswith("]"):
                self.finished = True
                self._buf = text[1:]
                break
            if not text:
                self._buf = ""
                break
            try:
                value, end = _decoder.raw_decode(text)
            except json.JSONDecodeError:
                self._buf = text  # an element still arriving
                break
            out.append(value)
            self._buf = text[end:]
        return out

    def close(self) -> list[Any]:
        if self._buf.strip():
            raise ValueError("truncated JSON array")
        return []


def loads(data: str | bytes) -> Any:
    """json.loads that tolerates Anthropic's trailing spaces (and raises ValueError on garbage)."""
    return json.loads(data)
