"""Interfaces: HL7 v2 over MLLP beside the FHIR door (same ingest rules, records service)."""
