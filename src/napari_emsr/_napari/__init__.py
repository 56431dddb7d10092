"""The napari layer: the only part of napari-emsr that imports napari, Qt, magicgui or superqt.

Every widget here is a thin adapter over the same public functions as the ``emsr`` CLI.
"""
