"""The parts of a chat/completions request body: messages, tools, tool choice, formats, options.

Typed after OpenAI's API reference (openai-openapi ``CreateChatCompletionRequest``,
openai-python ``types/chat/completion_create_params.py``). Each union is one model
with a ``type`` (or ``role``) and a validator, not a pydantic union, so that a
complaint's location is the client's field path (``tools[0].function.name``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

#: OpenAI's rule for function, tool and response-format names
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"


def role_field_missing(field: str, why: str) -> PydanticCustomError:
    """A field a role (or a type) needs is missing; ``field`` extends the error's location."""
    return PydanticCustomError("missing_for_kind", "{why}", {"field": field, "why": why})


def _with_body_for_type(model: Any, what: str) -> Any:
    """OpenAI's tagged objects carry their body under the name of their ``type``."""
    if getattr(model, model.type) is None:
        raise role_field_missing(model.type, f"A {what} of type '{model.type}' needs '{model.type}'.")
    return model


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- messages ---------------------------------------------------------------------


class ContentPart(_Open):
    """One part of a message's content: ``text``, ``image_url``, ``input_audio``, ``file``, ``refusal``."""

    type: str
    text: str | None = None

    @model_validator(mode="after")
    def _text_has_text(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise role_field_missing("text", "A content part of type 'text' needs 'text'.")
        return self


#: bounds on what one request may hold (a body is at most server.max_body_bytes anyway): each
#: refused with a 400 naming the field, before anything is tokenized or routed
MAX_MESSAGES = 2048
MAX_PARTS = 256
MAX_TOOL_CALLS = 128
MAX_NAME_CHARS = 256


class FunctionCallBody(_Open):
    name: str = Field(max_length=MAX_NAME_CHARS)
    arguments: str


class CustomCallBody(_Open):
    name: str
    input: str


class MessageToolCall(_Open):
    """A tool call an assistant made earlier in the conversation."""

    id: str = Field(max_length=MAX_NAME_CHARS)
    type: Literal["function", "custom"] = "function"
    function: FunctionCallBody | None = None
    custom: CustomCallBody | None = None

    @model_validator(mode="after")
    def _body_for_type(self) -> MessageToolCall:
        return _with_body_for_type(self, "tool call")


class ChatMessage(_Open):
    """One message; what it must carry depends on its role, as in OpenAI's reference."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | Annotated[list[ContentPart], Field(max_length=MAX_PARTS)] | None = None
    name: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    tool_calls: list[MessageToolCall] | None = Field(default=None, max_length=MAX_TOOL_CALLS)
    tool_call_id: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    function_call: FunctionCallBody | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _role_rules(self) -> ChatMessage:
        if isinstance(self.content, list) and not self.content:
            raise role_field_missing("content", "Content parts must not be an empty list.")
        if self.role == "assistant":
            if self.content is None and not self.tool_calls and self.function_call is None and self.refusal is None:
                raise role_field_missing(
                    "content", "An assistant message needs 'content' unless it has 'tool_calls' or 'function_call'."
                )
            return self
        if self.content is None and self.role != "function":
            raise role_field_missing("content", f"A message with role '{self.role}' needs 'content'.")
        if self.role == "tool" and self.tool_call_id is None:
            raise role_field_missing("tool_call_id", "A message with role 'tool' needs 'tool_call_id'.")
        if self.role == "function" and self.name is None:
            raise role_field_missing("name", "A message with role 'function' needs 'name'.")
        return self


# ---- tools and tool choice ----------------------------------------------------------


class FunctionDefinition(_Open):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CustomToolDefinition(_Open):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    format: dict[str, Any] | None = None


class Tool(_Open):
    """A ``function`` tool (JSON arguments) or a ``custom`` tool (free-form input)."""

    type: Literal["function", "custom"]
    function: FunctionDefinition | None = None
    custom: CustomToolDefinition | None = None

    @model_validator(mode="after")
    def _body_for_type(self) -> Tool:
        return _with_body_for_type(self, "tool")

    @property
    def name(self) -> str:
        body = self.function if self.type == "function" else self.custom
        assert body is not None
        return body.name


class ToolName(_Open):
    name: str


class AllowedTools(_Closed):
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]] = Field(min_length=1)


class ToolChoice(_Closed):
    """A tool choice object: a named ``function`` or ``custom`` tool, or ``allowed_tools``."""

    type: Literal["function", "custom", "allowed_tools"]
    function: ToolName | None = None
    custom: ToolName | None = None
    allowed_tools: AllowedTools | None = None

    @model_validator(mode="after")
    def _body_for_type(self) -> ToolChoice:
        return _with_body_for_type(self, "tool_choice")

    def allowed_names(self) -> list[str]:
        """The tool names this choice lets the model call."""
        if self.type == "allowed_tools":
            assert self.allowed_tools is not None
            names = []
            for ref in self.allowed_tools.tools:
                body = ref.get(ref.get("type", "function")) or {}
                names.append(body.get("name") if isinstance(body, dict) else None)
                if names[-1] is None:
                    names[-1] = ref.get("name")
            return [n for n in names if isinstance(n, str)]
        body = self.function if self.type == "function" else self.custom
        assert body is not None
        return [body.name]


class FunctionCallChoice(_Closed):
    """Legacy ``function_call``: force a function by name."""

    name: str


# ---- output formats -------------------------------------------------------------------


class JSONSchemaFormat(_Open):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    # "schema" shadows a BaseModel attribute: stored under another name, read and written as "schema"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Closed):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_for_json_schema(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise role_field_missing("json_schema", "response_format of type 'json_schema' needs 'json_schema'.")
        return self

    def as_dict(self) -> dict[str, Any]:
        """The format as OpenAI spells it (``schema``, not the attribute's name)."""
        return self.model_dump(exclude_none=True, by_alias=True)


# ---- options ----------------------------------------------------------------------------


class StreamOptions(_Closed):
    include_usage: bool = False
    #: OpenAI pads stream events against a side channel; this gateway adds no padding
    include_obfuscation: bool | None = None


class AudioOutput(_Closed):
    format: Literal["wav", "aac", "mp3", "flac", "opus", "pcm16"]
    voice: str | dict[str, str]


class Prediction(_Closed):
    type: Literal["content"]
    content: str | list[ContentPart]


class WebSearchOptions(_Closed):
    search_context_size: Literal["low", "medium", "high"] | None = None
    user_location: dict[str, Any] | None = None


class Moderation(_Closed):
    model: str
    policy: dict[str, Any] | None = None


class PromptCacheOptions(_Closed):
    mode: Literal["implicit", "explicit"] | None = None
    ttl: Literal["30m"] | None = None


def check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    """OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512."""
    if value is None:
        return None
    if len(value) > 16:
        raise ValueError("at most 16 key-value pairs are allowed")
    for key, item in value.items():
        if len(key) > 64:
            raise ValueError(f"key {key[:20]!r}... is longer than 64 characters")
        if len(item) > 512:
            raise ValueError(f"the value of {key!r} is longer than 512 characters")
    return value


def check_logit_bias(value: dict[str, float] | None) -> dict[str, float] | None:
    """Keys are token ids (as strings), values in [-100, 100]."""
    if value is None:
        return None
    for key, bias in value.items():
        if not key.strip().isdigit():
            raise ValueError(f"key {key!r} is not a token id")
        if not -100 <= bias <= 100:
            raise ValueError(f"the bias of token {key} must be between -100 and 100")
    return value


__all__ = [
    "AudioOutput",
    "ChatMessage",
    "FunctionCallChoice",
    "FunctionDefinition",
    "Moderation",
    "Prediction",
    "PromptCacheOptions",
    "ResponseFormat",
    "StreamOptions",
    "Tool",
    "ToolChoice",
    "WebSearchOptions",
    "check_logit_bias",
    "check_metadata",
]
