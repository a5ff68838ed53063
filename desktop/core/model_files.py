"""Model files the user already has: what a picked file or folder is, the vision projector that goes with a
GGUF model, the recommended image detail for it, and the settings that use it. Qt-free."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from captioneer.backends.errors import ModelFileError
from captioneer.backends.gguf_files import check_gguf_pair, pair_gguf_files
from captioneer.backends.recommend import Profile
from captioneer.backends.registry import ENGINES, engine_entry
from captioneer.backends.transformers_loading import resolve_model_dir
from captioneer.desktop.core.settings import Settings


def _engine_downloading(kind: str) -> str:
    """The engine whose models are of this download kind: ``gguf`` files or a ``snapshot`` folder."""
    return next(name for name, entry in ENGINES.items() if entry.download == kind)


@dataclass(frozen=True)
class OwnModel:
    """A model the user picked from their own files.

    Attributes:
        engine: the engine that runs it.
        model: the model file (GGUF) or folder (Transformers).
        mmproj: the vision projector, once known (GGUF).
        projectors: projectors found next to the model that fit it; several mean the user chooses.
        hidden: the language model's width, to recognise its size in the catalog.
        quant: the file's quantization (GGUF), to recognise the catalog variant.
    """

    engine: str
    model: Path
    mmproj: Path | None = None
    projectors: tuple[Path, ...] = ()
    hidden: int | None = None
    quant: str | None = None

    @property
    def needs_projector(self) -> bool:
        """A vision projector still has to be chosen before the model can see images."""
        return engine_entry(self.engine).needs_mmproj and self.mmproj is None

    @property
    def projector_note(self) -> str:
        """Where the projector came from, or why one must be chosen, in one line."""
        if self.mmproj is not None:
            if len(self.projectors) == 1 and self.projectors[0] == self.mmproj:
                return f"{self.mmproj.name} (found next to the model)"
            return f"{self.mmproj.name}"
        if self.projectors:
            names = ", ".join(p.name for p in self.projectors)
            return f"several fit this model ({names}): choose one"
        return "none found next to the model: choose its mmproj .gguf file"


def _folder_width(folder: Path) -> int | None:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    width = (config.get("text_config") or {}).get("hidden_size") or config.get("hidden_size")
    return int(width) if isinstance(width, int) else None


def own_model(picked: str | Path) -> OwnModel:
    """What ``picked`` is: a GGUF model or projector (paired with its other half when the folder holds
    exactly one that fits), or a Transformers model folder (picked itself or by its ``config.json``).

    Raises:
        ModelFileError: not a usable model, in a message for the window (see ``window_text``).
    """
    path = Path(picked).expanduser()
    if path.is_dir() or path.name == "config.json":
        folder = resolve_model_dir(str(path if path.is_dir() else path.parent))
        return OwnModel(_engine_downloading("snapshot"), folder, hidden=_folder_width(folder))
    if path.suffix.lower() != ".gguf":
        raise ModelFileError(
            f"{path.name} is neither a GGUF model nor a Transformers model folder. Choose the model's .gguf "
            "file, or the folder that holds its config.json."
        )
    files = pair_gguf_files(path)
    return OwnModel(
        _engine_downloading("gguf"),
        files.model.path,
        files.mmproj.path if files.mmproj is not None else None,
        files.projectors,
        files.model.embedding_length,
        files.model.quantization,
    )


def with_projector(own: OwnModel, mmproj: str | Path) -> OwnModel:
    """``own`` with the projector the user chose, checked against the model.

    Raises:
        ModelFileError: not a projector, or one made for another model.
    """
    _model, header = check_gguf_pair(own.model, mmproj)
    return dataclasses.replace(own, mmproj=header.path)


def recommended_image_tokens(profiles: list[Profile], own: OwnModel) -> int | None:
    """The image detail the recommendation gives this model on this computer: the profile of the same
    engine, size and quantization, else of the same size, else the engine's best; None if none runs it."""
    same_engine = [p for p in profiles if p.engine == own.engine]
    same_size = [p for p in same_engine if own.hidden is not None and p.variant.model.hidden == own.hidden]
    exact = [p for p in same_size if own.quant is not None and p.quant.upper() == own.quant.upper()]
    for group in (exact, same_size, same_engine):
        if group:
            return group[0].image_tokens
    return None


def own_model_settings(settings: Settings, own: OwnModel, image_tokens: int | None) -> Settings:
    """The settings that use ``own``, with the recommended image detail when there is one."""
    if own.needs_projector:
        raise ValueError("choose the vision projector first")
    keep_quant = own.engine == settings.engine and engine_entry(own.engine).quant_choice
    return settings.model_copy(
        update={
            "engine": own.engine,
            "model": str(own.model),
            "mmproj": str(own.mmproj) if own.mmproj is not None else None,
            "quant": settings.quant if keep_quant else None,
            "image_tokens": image_tokens or settings.image_tokens,
            "first_run_done": True,
        }
    )
