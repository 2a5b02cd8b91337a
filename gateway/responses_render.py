"""Writing a Responses answer: the ``response`` object, and its typed event stream.

A stream is OpenAI's documented sequence, every event with a ``sequence_number``
counted from 0: ``response.created``, ``response.in_progress``; per output item
``response.output_item.added``, then for a message ``response.content_part.added``,
``response.output_text.delta``..., ``response.output_text.done``,
``response.content_part.done`` (for a function call
``response.function_call_arguments.delta``... and ``.done``), and
``response.output_item.done``; last ``response.completed`` (``response.incomplete``
when ``max_output_tokens`` cut it) with the billed usage, or ``response.failed``
when the replica failed mid-stream. The finished object (``final``) is what is stored.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from backends.base import Completion, StreamChunk, Usage
from gateway.errors import APIError
from gateway.responses_schema import new_id


def usage_object(usage: Usage, cost_usd: Decimal | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }
    if cost_usd is not None:
        body["cost"] = float(cost_usd)
    return body


def _message(item_id: str, text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": [part]}


def _function_call(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


class ResponsesRenderer:
    """One Responses answer. ``head`` is the response object without output, status and usage."""

    __slots__ = ("_calls", "_finish", "_head", "_open", "_output", "_seq", "final")

    def __init__(self, head: dict[str, Any]) -> None:
        self._head = head
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._calls: dict[int, dict[str, Any]] = {}  # tool-call delta index -> its item
        self._finish: str | None = None
        #: the finished response object (complete, incomplete or failed), once there is one
        self.final: dict[str, Any] | None = None

    # ---- the whole object ---------------------------------------------------------------
    def _response(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None,
                  finish: str | None = None) -> dict[str, Any]:
        incomplete = finish == "length"
        body = dict(self._head)
        body.update(
            status="incomplete" if incomplete and status == "completed" else status,
            incomplete_details={"reason": "max_output_tokens"} if incomplete and status == "completed" else None,
            output=output,
            usage=usage,
        )
        return body

    def body(self, completion: Completion, usage: Usage, cost_usd: Decimal) -> Any:
        choice = completion.choices[0]
        status = "incomplete" if choice.finish_reason == "length" else "completed"
        output = []
        if choice.text or not choice.tool_calls:
            output.append(_message(new_id("msg"), choice.text, status))
        for call in choice.tool_calls or ():
            function = call.get("function") or {}
            output.append(_function_call(new_id("fc"), call.get("id") or new_id("call"), function.get("name", ""),
                                         function.get("arguments", ""), "completed"))
        self.final = self._response("completed", output, usage_object(usage, cost_usd), choice.finish_reason)
        return self.final

    # ---- the stream -----------------------------------------------------------------------
    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self._seq}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _start(self) -> list[bytes]:
        if self._seq:
            return []
        progress = self._response("in_progress", [], None)
        return [self._event("response.created", response=progress),
                self._event("response.in_progress", response=progress)]

    def _close_open(self) -> list[bytes]:
        item, self._open = self._open, None
        if item is None:
            return []
        index = self._output.index(item)
        if item["type"] == "message":
            part = item["content"][0]
            item["status"] = "incomplete" if self._finish == "length" else "completed"
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            return [
                self._event("response.output_text.done", **ids, text=part["text"], logprobs=[]),
                self._event("response.content_part.done", **ids, part=part),
                self._event("response.output_item.done", output_index=index, item=item),
            ]
        item["status"] = "completed"
        return [
            self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                        name=item["name"], arguments=item["arguments"]),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _open_item(self, item: dict[str, Any]) -> list[bytes]:
        frames = self._close_open()
        self._output.append(item)
        self._open = item
        frames.append(self._event("response.output_item.added", output_index=len(self._output) - 1, item=item))
        return frames

    def _message_open(self) -> tuple[dict[str, Any], list[bytes]]:
        """The message item being streamed, opened (with its text part) if there is none."""
        item = self._open
        if item is not None and item["type"] == "message":
            return item, []
        item = _message(new_id("msg"), "", "in_progress")
        item["content"] = []
        frames = self._open_item(item)
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        item["content"].append(part)
        frames.append(self._event("response.content_part.added", item_id=item["id"],
                                  output_index=len(self._output) - 1, content_index=0, part=dict(part)))
        return item, frames

    def _text(self, text: str) -> list[bytes]:
        item, frames = self._message_open()
        item["content"][0]["text"] += text
        frames.append(self._event("response.output_text.delta", item_id=item["id"],
                                  output_index=self._output.index(item), content_index=0, delta=text, logprobs=[]))
        return frames

    def _tool_delta(self, call: dict[str, Any]) -> list[bytes]:
        frames: list[bytes] = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        item = self._calls.get(index)
        if item is None:
            item = _function_call(new_id("fc"), call.get("id") or new_id("call"), function.get("name") or "", "",
                                  "in_progress")
            self._calls[index] = item
            frames += self._open_item(item)
        pieces = function.get("arguments") or ""
        if pieces:
            item["arguments"] += pieces
            frames.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                      output_index=self._output.index(item), delta=pieces))
        return frames

    def frames(self, chunk: StreamChunk) -> list[bytes]:
        frames = self._start()
        for delta in chunk.deltas:
            if delta.text:
                frames += self._text(delta.text)
            for call in delta.tool_calls or ():
                frames += self._tool_delta(call)
            if delta.finish_reason is not None:
                self._finish = delta.finish_reason
        return frames

    def end(self, usage: Usage, cost_usd: Decimal) -> list[bytes]:
        frames = self._start()
        if not self._output:  # an empty answer is still one (empty) message, as in the non-streamed body
            frames += self._message_open()[1]
        frames += self._close_open()
        self.final = self._response("completed", self._output, usage_object(usage, cost_usd), self._finish)
        kind = "response.incomplete" if self.final["status"] == "incomplete" else "response.completed"
        return [*frames, self._event(kind, response=self.final)]

    def error(self, error: APIError) -> list[bytes]:
        frames = self._start() + self._close_open()
        failed = self._response("failed", self._output, None)
        failed["error"] = {"code": error.code or "server_error", "message": error.message}
        self.final = failed
        return [*frames, self._event("response.failed", response=failed)]
