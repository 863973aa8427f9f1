import pathlib
import sys

# Tests import the in-tree package without installing it.
_PYTHON_DIR = pathlib.Path(__file__).resolve().parents[1]
if str(_PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(_PYTHON_DIR))
