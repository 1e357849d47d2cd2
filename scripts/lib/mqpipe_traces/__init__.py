"""scripts/traces as a package: the sample traces under test/traces/
(generate), what a replay must reproduce (normalize), and fresh pipelines
to replay them into, with or without faults (run, chaos)."""
