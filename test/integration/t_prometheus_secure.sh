#!/usr/bin/env bash
# t_prometheus on the secure profile (README "Monitoring with Prometheus").
PROM_SECURE=1 exec bash "$(dirname "$0")/t_prometheus.sh"
