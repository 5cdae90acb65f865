"""Unit tests import the shared code as the file_roots tree does: _utils on sys.path."""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UTILS = os.path.join(REPO, "_utils")
if UTILS not in sys.path:
    sys.path.insert(0, UTILS)
