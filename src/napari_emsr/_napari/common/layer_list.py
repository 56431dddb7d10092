"""A checkable list of the viewer's image layers that follows additions, removals and renames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem

from napari_emsr._napari.common.layers import FollowsLayers

if TYPE_CHECKING:
    import napari

__all__ = ["LayerChecklist"]


def _is_image(layer: Any) -> bool:
    from napari.layers import Image

    return isinstance(layer, Image)


class LayerChecklist(FollowsLayers, QListWidget):
    """Image layers with a check box each; checked layers stay checked while they exist.

    Signals
    -------
    changed()
        When the set of checked layers changes.
    """

    changed = Signal()

    def __init__(self, viewer: "napari.viewer.Viewer", parent: Any = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self._checked: list[Any] = []  # the layers themselves, so that a renamed layer stays checked
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setMaximumHeight(110)
        self.itemChanged.connect(self._remember)
        self._follow_layers(viewer)

    def refresh(self, event: Any = None) -> None:
        """Rebuild the list from the viewer's image layers, keeping the checks."""
        self._checked = [layer for layer in self._checked if layer in self.viewer.layers]
        self.blockSignals(True)
        self.clear()
        for layer in self.viewer.layers:
            if _is_image(layer):
                item = QListWidgetItem(layer.name, self)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if layer in self._checked else Qt.CheckState.Unchecked)
        self.blockSignals(False)

    def _remember(self, item: QListWidgetItem) -> None:
        layer = self.viewer.layers[item.text()] if item.text() in self.viewer.layers else None
        if layer is None:
            return
        checked = item.checkState() == Qt.CheckState.Checked
        if checked and layer not in self._checked:
            self._checked.append(layer)
        elif not checked and layer in self._checked:
            self._checked.remove(layer)
        self.changed.emit()

    def layers(self) -> list[Any]:
        """Return the checked layers, in the order they were checked."""
        return [layer for layer in self._checked if layer in self.viewer.layers]

    def set_layers(self, layers: list[Any]) -> None:
        """Check exactly ``layers`` (in that order)."""
        self._checked = list(layers)
        self.refresh()
        self.changed.emit()
