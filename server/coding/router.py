"""HTTP routes of the coding domain: pages and /api/v1 JSON."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
