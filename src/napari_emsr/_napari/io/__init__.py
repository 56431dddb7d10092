"""napari reader, writer and sample-data contributions."""
