"""HTTP routes of the billing domain: pages and /api/v1 JSON."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
