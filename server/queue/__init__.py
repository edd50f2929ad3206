"""Queues, routing rules, claiming, leases, holds and assignment."""
