"""Encounters: ingest (FHIR, JSON), envelope encryption, open_record (the door to plaintext)."""
