"""``python -m napari_emsr.cli``: the ``emsr`` command."""

import sys

from napari_emsr.cli import main

sys.exit(main())
