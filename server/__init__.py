"""Chartdesk: the work queue for remote medical coding."""

__version__ = "0.1.0"
