"""Where the repository and its binaries are."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def bin_dir():
    """The agents' and tools' directory: $MQPIPE_BIN, else build/bin."""
    return os.environ.get("MQPIPE_BIN") or os.path.join(ROOT, "build/bin")
