"""How photos reach the quick-caption list: drop, paste, Open and Open Folder; folders are expanded and pasted
pixels saved off the GUI thread, and a file already in the list is not added twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog

from captioneer.desktop.core.images import IMAGE_SUFFIXES
from captioneer.desktop.ui.card_list import CardList
from captioneer.desktop.ui.main_view import MainView, paths_from_mime
from captioneer.desktop.ui.quick_caption import Collected
from captioneer.desktop.ui.workers import Background


class PhotoInputs(QObject):
    """Turns what the user drops, pastes or opens into new cards; ``cardsAdded`` says which to run."""

    cardsAdded = Signal(list)  # [Card], never empty

    def __init__(
        self,
        view: MainView,
        background: Background,
        card_list: CardList,
        status: Callable[[str], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.view = view
        self.background = background
        self.card_list = card_list
        self._status = status
        background.relay.collected.connect(self._on_collected)
        background.relay.pasteSaved.connect(lambda path: self.add_paths([path]))
        background.relay.pasteFailed.connect(status)
        view.pathsDropped.connect(self.add_paths)
        view.imageDropped.connect(self.add_image)
        v = view
        for trigger in (v.open_action.triggered, v.open_button.clicked, v.empty_open_button.clicked):
            trigger.connect(self.open_files)
        v.open_folder_action.triggered.connect(self.open_folder)
        for trigger in (v.paste_action.triggered, v.paste_button.clicked, v.empty_paste_button.clicked):
            trigger.connect(self.paste)

    @Slot(list)
    def add_paths(self, paths: list[Path]) -> None:
        """Files and folders to caption; folders are expanded off the GUI thread."""
        if paths:
            self.background.collect([Path(p) for p in paths])

    @Slot(QImage)
    def add_image(self, image: QImage) -> None:
        """Raw pixels (dropped or pasted) are saved as a PNG, then captioned like a file."""
        if image.isNull():
            self._status("That image could not be read.")
            return
        self.background.save_pasted(image)
    def open_files(self) -> None:
        patterns = " ".join(f"*{suffix}" for suffix in sorted(IMAGE_SUFFIXES))
        files, _ = QFileDialog.getOpenFileNames(
            self.view, "Open Photos", str(Path.home()), f"Photos ({patterns});;All files (*)"
        )
        self.add_paths([Path(f) for f in files])

    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.view, "Open a Folder of Photos", str(Path.home()))
        if folder:
            self.add_paths([Path(folder)])

    def paste(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        paths = paths_from_mime(mime) if mime is not None else []
        if paths:
            self.add_paths(paths)
        elif mime is not None and mime.hasImage():
            self.add_image(QGuiApplication.clipboard().image())
        else:
            self._status("The clipboard holds no image. Copy a photo or a screenshot first.")

    @Slot(object)
    def _on_collected(self, collected: Collected) -> None:
        notes = []
        if collected.not_images:
            notes.append(f"{collected.not_images} file(s) skipped: not photos")
        if collected.over_limit:
            notes.append(
                f"{collected.over_limit} more photo(s) left out: quick caption takes up to "
                f"{len(collected.files)} at a time"
            )
        if notes:
            self._status("; ".join(notes) + ".")
        if not collected.files:
            if not notes:
                self._status("No photos found there.")
            return
        added = [self.card_list.add(path) for path in collected.files]
        new_cards = [card for card in added if card is not None]
        known = len(added) - len(new_cards)
        if known:
            notes.append(f"{known} photo(s) already in the list")
            self._status("; ".join(notes) + ".")
        self.view.show_cards(True)
        first = new_cards[0] if new_cards else self.card_list.find(collected.files[0])
        if first is not None:
            self.view.scroll.ensureWidgetVisible(first.view)
        if new_cards:
            self.cardsAdded.emit(new_cards)

