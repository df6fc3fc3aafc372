"""Benchmarks' data: dataset readers (DAVIS, JHMDB, VIP), the official metrics, generated clips."""
