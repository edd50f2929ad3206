"""Billing handoff: ready list, claims (837P/837I, FHIR Claim, CSV), billed and returned."""
