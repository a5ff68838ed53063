"""The HTTP API's request and response shapes (pydantic), so /openapi.json documents every field and type."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """What went wrong, in one line a person can act on (OpenAI's error shape, so its clients show it)."""

    message: str
    type: str = Field(description="invalid_request, unauthorized, too_large, queue_full, engine_crashed…")
    code: str | None = Field(default=None, description="a finer reason where there is one (an image's kind)")


class ErrorResponse(BaseModel):
    error: ErrorBody


class VisionResult(BaseModel):
    """One task's answer about one image."""

    result: str | dict[str, Any] = Field(
        description="the answer: text for plain tasks, the validated object for structured ones (keywords…)"
    )
    text: str = Field(description="the answer as the model gave it")
    task: str
    model: str
    engine: str
    seconds: float = Field(description="time from the start of the work to the answer (queueing excluded)")
    image_tokens: int | None = Field(default=None, description="visual tokens of the image as asked")
    attempts: int = Field(description="generations made (a structured answer that was invalid is retried)")
    warning: str | None = Field(default=None, description="e.g. the answer was cut off at max_tokens")


class TaskInfo(BaseModel):
    id: str
    label: str
    summary: str
    structured: bool = Field(description="answers with a JSON object")
    needs_question: bool = Field(description="needs `prompt` (the question)")


class TaskList(BaseModel):
    tasks: list[TaskInfo]


class ModelEntry(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "captioneer"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelEntry]


class Health(BaseModel):
    """The server's state; answered at once, even while the engine is busy."""

    status: Literal["ok", "stopping"]
    engine: str
    model: str
    loaded: bool
    memory_bytes: int | None = Field(default=None, description="resident memory of the engine (process)")
    waiting: int = Field(description="requests waiting for the engine")
    in_flight: int = Field(description="requests the engine is answering")
    max_queue: int
    max_in_flight: int
    served: int = Field(description="requests answered since the start")
    failed: int = Field(description="requests that failed after they were admitted")
    rejected: int = Field(description="requests turned away with 429 because the queue was full")
    cancelled: int = Field(description="requests whose client went away before the answer")


# -- OpenAI-compatible chat completions -------------------------------------------------------------------


class ImageURL(BaseModel):
    url: str = Field(description="a base64 data URL (data:image/jpeg;base64,…); network URLs are refused")
    detail: str | None = Field(default=None, description="ignored: the server's pixel budget decides")


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageURL


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart | ImagePart]


class JsonSchemaFormat(BaseModel):
    name: str = "answer"
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema", description="json_object: a schema")


class ChatRequest(BaseModel):
    """A chat completion request. Fields this server does not honour are refused rather than ignored;
    ``chat_template_kwargs`` and ``mm_processor_kwargs`` (sent by vLLM clients) are accepted: thinking is
    always off and images are always prepared at the server's pixel budget."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    n: Literal[1] = 1
    response_format: ResponseFormat | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"] | None


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
