"""Claim edits: NCCI PTP and MUE tables and their loaders, modifiers, ICD-10-CM tabular
notes and the Medicare Code Editor, by date of service.

A layer between coding's code sets (`coding.codesets`, `coding.schemas`) and its service:
`coding.service.validate` runs `edits.service.check` inside every check of the codes.
"""
