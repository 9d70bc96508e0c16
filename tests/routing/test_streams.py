"""Stream framing: frames come out whole however the bytes were cut on the way."""

from __future__ import annotations

import pytest

from registry.providers.streams import JSONArrayDecoder, NDJSONDecoder, SSEDecoder

SSE = b': OPENROUTER PROCESSING\n\nevent: a\ndata: {"x": 1}   \r\n\r\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n'
ARRAY = b'[{"a": 1}\n,\r\n{"b": {"c": "]"}}\n]'


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_sse_frames_survive_any_split(size):
    decoder = SSEDecoder()
    frames = []
    for i in range(0, len(SSE), size):
        frames += decoder.feed(SSE[i:i + size])
    frames += decoder.close()
    assert frames == [("a", '{"x": 1}   '), (None, "line1\nline2"), (None, "[DONE]")]


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_json_array_elements_survive_any_split(size):
    decoder = JSONArrayDecoder()
    items = []
    for i in range(0, len(ARRAY), size):
        items += decoder.feed(ARRAY[i:i + size])
    assert items == [{"a": 1}, {"b": {"c": "]"}}] and decoder.finished


def test_truncated_json_array_is_an_error():
    decoder = JSONArrayDecoder()
    decoder.feed(b'[{"a": 1}\n,\r\n{"b": ')
    with pytest.raises(ValueError):
        decoder.close()


def test_ndjson_lines_survive_any_split():
    decoder = NDJSONDecoder()
    data = b'{"a":1}\n{"b":2}\n{"c":3}'
    items = [item for i in range(len(data)) for item in decoder.feed(data[i:i + 1])] + decoder.close()
    assert items == [{"a": 1}, {"b": 2}, {"c": 3}]
