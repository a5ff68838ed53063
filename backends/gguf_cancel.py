"""Stopping llama.cpp inside a computation when the running request is cancelled (:class:`NativeCancel`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from captioneer.backends.cancel import CancelToken

CHECK_EVERY_NODES = 4
"""How often (in graph nodes) the vision encoder stops to look at the cancel token. Each look splits its
graph there (one more synchronisation); on the tiny model every 1, 4 or 64 nodes encoded in the same time
within the noise, while 64 let one slice run 4 s past a cancel."""


class NativeCancel:
    """Points llama.cpp's two hooks at the cancel token of the request that is running.

    Streaming checks the token between tokens, but before the first token llama-cpp-python's chat handler
    encodes the image and decodes the whole prompt in native calls that never return to Python: on a CPU
    that is seconds to a minute, and a cancel used to wait for it (and the engine host killed the process
    after its grace period). Two hooks reach inside:

    - the language model context's **abort callback**, which ``llama_decode`` checks between graph nodes:
      the prompt, the image embeddings and every generated token stop at the next node;
    - the vision encoder's **scheduler eval callback** (mtmd's ``cb_eval``; mtmd has no abort callback in
      llama-cpp-python 0.3.x): asking to "see" every :data:`CHECK_EVERY_NODES`-th node splits the encoder's
      graph there, and answering "stop" after a cancel skips the rest of it. The half-made embeddings are
      never used: the decode that would read them aborts at its first node.

    Both hooks are ctypes callbacks kept alive by this object, which the engine keeps as long as its model.
    """

    def __init__(self, llama_cpp: Any) -> None:
        self._token: CancelToken | None = None
        self._nodes = 0
        self.abort_callback = llama_cpp.ggml_abort_callback(self._should_abort)
        self.eval_callback = llama_cpp.ggml_backend_sched_eval_callback(self._eval)

    @property
    def cancelled(self) -> bool:
        """Whether the request that is running has been cancelled."""
        token = self._token
        return token is not None and token.cancelled

    @contextlib.contextmanager
    def watching(self, token: CancelToken) -> Iterator[None]:
        """Let ``token`` stop native work for the duration of the block (one request)."""
        self._token, self._nodes = token, 0
        try:
            yield
        finally:
            self._token = None

    def _should_abort(self, _data: Any) -> bool:
        return self.cancelled

    def _eval(self, _tensor: Any, ask: bool, _data: Any) -> bool:
        if ask:
            self._nodes += 1
            return self._nodes % CHECK_EVERY_NODES == 0 or self.cancelled
        return not self.cancelled

    def attach(self, llama: Any, llama_cpp: Any) -> None:
        """Install the abort callback on ``llama``'s context (a Llama from llama-cpp-python)."""
        llama_cpp.llama_set_abort_callback(llama._ctx.ctx, self.abort_callback, None)

    @contextlib.contextmanager
    def encoder_hook(self, mtmd_cpp: Any) -> Iterator[None]:
        """While the vision projector is loaded in this block, its context gets the eval callback:
        llama-cpp-python builds mtmd's parameters from ``mtmd_context_params_default``."""
        original = mtmd_cpp.mtmd_context_params_default

        def with_eval_callback() -> Any:
            params = original()
            params.cb_eval = self.eval_callback
            return params

        mtmd_cpp.mtmd_context_params_default = with_eval_callback
        try:
            yield
        finally:
            mtmd_cpp.mtmd_context_params_default = original
