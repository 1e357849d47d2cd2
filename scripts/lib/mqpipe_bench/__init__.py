"""scripts/bench: the benchmarks, one module per concern (README "Performance")."""
