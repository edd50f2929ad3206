"""HTTP routes of the records domain: pages and /api/v1 JSON."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
