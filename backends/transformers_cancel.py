"""How a transformers generation stops when its request is cancelled: between tokens, and inside the
forward pass that encodes the image and reads the prompt."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import Cancelled

if TYPE_CHECKING:
    import torch


class CancelCriterion:
    """A stopping criterion that ends generation between tokens when the user cancels (or the consumer
    of the stream goes away)."""

    def __init__(self, cancel: CancelToken, stop: threading.Event) -> None:
        self.cancel = cancel
        self.stop = stop

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch

        done = self.cancel.cancelled or self.stop.is_set()
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def watch_layers(model: Any, should_stop: Callable[[], bool]) -> None:
    """Make ``model`` raise :class:`Cancelled` at the start of any layer once ``should_stop()`` is true.

    The stopping criterion only runs between generated tokens; before the first one the vision tower
    encodes the image and the language model reads the whole prompt, each a stack of layers that can take
    seconds on a CPU. A forward pre-hook on every member of every ``ModuleList`` (the decoder layers, the
    vision blocks and mergers) is the one place transformers lets a caller step in mid-forward.
    """
    import torch

    def check(_module: Any, _args: Any) -> None:
        if should_stop():
            raise Cancelled()

    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList):
            for layer in module:
                layer.register_forward_pre_hook(check)
