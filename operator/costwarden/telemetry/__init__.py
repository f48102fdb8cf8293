"""GPU telemetry: per-pod GPU utilisation, memory and power from DCGM (through Prometheus or a
dcgm-exporter scrape) or from costwarden's node agents, and Prometheus counters for unit economics.

``samples`` holds the records and the source interfaces the operator codes against; ``dcgm`` and
``agent_metrics`` turn series into samples without I/O; ``prometheus`` and ``scrape`` are the
sources; ``factory`` picks them from the command line's values. Nothing here raises on bad data or
an unreachable source: a reading carries the error instead, and missing data is never idleness.
"""
