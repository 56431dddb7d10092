import sys

from napari_emsr.cli import main

sys.exit(main())
