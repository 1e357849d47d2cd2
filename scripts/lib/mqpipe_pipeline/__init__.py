"""scripts/pipeline: mqpipe on this machine (see cli.py)."""
