"""The FastAPI application: routes, error answers and the access guard around them (see ``create_app``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from captioneer.backends.cancel import CancelToken
from captioneer.desktop import __version__
from captioneer.desktop.server.access import AccessGuard
from captioneer.desktop.server.admission import POLL_SECONDS
from captioneer.desktop.server.chat import (
    ChatAsk,
    answer_chat,
    chat_ask,
    chunk_event,
    completion_id,
    sse,
)
from captioneer.desktop.server.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatRequest,
    ChatResponse,
    ErrorResponse,
    Health,
    ModelEntry,
    ModelList,
    TaskList,
    VisionResult,
)
from captioneer.desktop.server.service import BadRequest, HttpError, Service, http_error
from captioneer.desktop.server.vision import answer_vision, task_list, vision_ask

log = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": what}
    for status, what in {
        400: "the request is wrong (missing or unusable image, bad field)",
        401: "the API token is missing or wrong",
        413: "the request is larger than --max-request-mb",
        422: "the model gave no usable answer",
        429: "the queue is full: retry after Retry-After seconds",
        502: "the engine's server failed",
        503: "the engine crashed on this request (the next gets a fresh engine), or the server is stopping",
    }.items()
}


def failure(exc: Exception) -> JSONResponse:
    """The answer to a request that failed with ``exc``; a failure nobody foresaw is logged with its
    traceback (never with the request's image or token)."""
    error = http_error(exc)
    if error.status == 500:
        log.error("request failed: %s", error.message, exc_info=exc)
    return error_response(error)


def error_response(error: HttpError) -> JSONResponse:
    headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
    body = {"error": {"message": error.message, "type": error.kind, "code": error.code}}
    return JSONResponse(body, status_code=error.status, headers=headers)


def create_app(service: Service, *, token: str | None = None, max_request_bytes: int = 64 * 2**20) -> Any:
    """The API for ``service``'s loaded engine. ``token``: every request must carry it as a bearer token;
    ``max_request_bytes``: larger requests get 413 before they are read. Returns an ASGI application."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        service.stop()  # uvicorn is stopping: whatever still runs is cancelled

    app = FastAPI(
        title="Captioneer",
        version=__version__,
        summary="Captions, alt text and keywords for images with Qwen3-VL, on this machine.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'] if part != 'body') or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
        return error_response(HttpError(400, "invalid_request", f"The request is not valid: {problems}."))

    @app.exception_handler(StarletteHTTPException)
    async def http_failure(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(HttpError(exc.status_code, "invalid_request", str(exc.detail)))

    @app.get("/health", response_model=Health, tags=["server"])
    async def health() -> Health:
        info = await run_in_threadpool(service.backend.info)
        admission = service.admission
        return Health(
            status="stopping" if service.stopping else "ok", engine=info.engine, model=service.model_id,
            loaded=info.loaded, memory_bytes=info.memory_bytes, waiting=admission.waiting,
            in_flight=admission.in_flight, max_queue=admission.max_queue,
            max_in_flight=admission.max_in_flight, served=service.served, failed=service.failed,
            rejected=service.rejected, cancelled=service.cancelled,
        )

    @app.get("/v1/tasks", response_model=TaskList, tags=["vision"])
    async def tasks() -> TaskList:
        return TaskList(tasks=task_list())

    @app.get("/v1/models", response_model=ModelList, tags=["openai"])
    async def models() -> ModelList:
        return ModelList(data=[ModelEntry(id=service.model_id, created=service.created)])

    @app.post("/v1/vision/completion", response_model=VisionResult, responses=ERRORS, tags=["vision"])
    async def vision_completion(
        request: Request,
        image: Annotated[UploadFile | None, File(description="the image (JPEG, PNG, HEIC, WebP…)")] = None,
        prompt: Annotated[str | None, Form(description="your question (the 'question' task)")] = None,
        task: Annotated[str | None, Form(description="a task id from GET /v1/tasks")] = None,
        language: Annotated[str | None, Form(description="answer language (default: the settings')")] = None,
        max_tokens: Annotated[int | None, Form(ge=1)] = None,
        temperature: Annotated[float | None, Form()] = None,
        seed: Annotated[int | None, Form(ge=0)] = None,
    ) -> Any:
        """Run a task preset on one image: ``result`` is the text, or the validated object of a structured
        task (keywords, social post…)."""
        try:
            if image is None:
                raise BadRequest("The request has no image: send it as the multipart field 'image'.")
            data = await image.read()
            if not data:
                raise BadRequest("The uploaded image is empty (0 bytes).")
            ask = vision_ask(service, task_id=task, prompt=prompt, language=language, max_tokens=max_tokens,
                             temperature=temperature, seed=seed)
            return await service.run(request.is_disconnected, lambda cancel: answer_vision(service, ask, data,
                                                                                           cancel))
        except Exception as exc:
            return failure(exc)

    streamed = {
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
              "description": "a chat.completion, or with stream: chat.completion.chunk events"},
        404: {"model": ErrorResponse, "description": "the request names a model this server does not serve"},
    }

    @app.post("/v1/chat/completions", response_model=ChatResponse, responses={**ERRORS, **streamed},
              tags=["openai"])
    async def chat_completions(request: Request, body: ChatRequest) -> Any:
        """OpenAI-compatible chat completion with images as base64 data URLs; ``stream`` answers with
        server-sent ``chat.completion.chunk`` events ending ``data: [DONE]``."""
        try:
            if body.model and body.model != service.model_id:
                return error_response(HttpError(
                    404, "model_not_found",
                    f"This server serves {service.model_id} only (see GET /v1/models), not {body.model}.",
                ))
            ask = chat_ask(service, body)
            if body.stream:
                return await _stream(service, request.is_disconnected, ask)
            text, finish = await service.run(request.is_disconnected,
                                             lambda cancel: answer_chat(service, ask, cancel))
        except Exception as exc:
            return failure(exc)
        return ChatResponse(
            id=completion_id(), created=int(time.time()), model=service.model_id,
            choices=[ChatChoice(message=AssistantMessage(content=text), finish_reason=finish)],
        )

    return AccessGuard(app, token=token, max_request_bytes=max_request_bytes)


_END = object()


async def _stream(service: Service, gone: Callable[[], Awaitable[bool]], ask: ChatAsk) -> Any:
    """Start a streamed answer. It waits for the first chunk (or the end) before answering, so a failure
    before any text still gets its own HTTP status; later failures end the stream with an error event."""
    cancel: CancelToken = await service.admit(gone)
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[object] = asyncio.Queue()

    def on_chunk(text: str) -> None:
        loop.call_soon_threadsafe(chunks.put_nowait, text)

    future = service.launch(cancel, lambda token: answer_chat(service, ask, token, on_chunk))
    future.add_done_callback(lambda _done: chunks.put_nowait(_END))
    first = asyncio.ensure_future(chunks.get())
    while not (await asyncio.wait({first}, timeout=POLL_SECONDS))[0]:
        if not cancel.cancelled and await gone():
            cancel.cancel()
    head = first.result()
    if head is _END and future.exception() is not None:
        raise future.exception()  # type: ignore[misc]
    ident, created = completion_id(), int(time.time())

    async def events() -> AsyncIterator[bytes]:
        finished = False
        try:
            yield chunk_event(ident, created, service.model_id, {"role": "assistant"}, None)
            item = head
            while item is not _END:
                yield chunk_event(ident, created, service.model_id, {"content": str(item)}, None)
                item = await chunks.get()
            error = future.exception()
            if error is not None:
                failure = http_error(error)
                yield sse({"error": {"message": failure.message, "type": failure.kind, "code": failure.code}})
            else:
                yield chunk_event(ident, created, service.model_id, {}, future.result()[1])
            yield sse("[DONE]")
            finished = True
        finally:
            if not finished:
                cancel.cancel()  # the client closed the stream: the engine stops at its next token

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

