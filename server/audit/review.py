"""Compliance review, the audit domain's public face for the router, the CLI and the bench.

One job a file: `search` (filters, keyset pages, the patient lookup), `reports` (patient and
user reports, flags, verify), `cases` (flags as cases) and `export` (FHIR AuditEvent and
CSV). Every search, report, export, verification and flag review is itself written to the
audit log.
"""

from __future__ import annotations

from server.audit.cases import CASE_STATUSES as CASE_STATUSES
from server.audit.cases import FlagWithCase as FlagWithCase
from server.audit.cases import case_steps as case_steps
from server.audit.cases import review_flag as review_flag
from server.audit.cases import with_cases as with_cases
from server.audit.export import BALP_PATIENT_READ as BALP_PATIENT_READ
from server.audit.export import CSV_COLUMNS as CSV_COLUMNS
from server.audit.export import EXPORT_FORMATS as EXPORT_FORMATS
from server.audit.export import check_export as check_export
from server.audit.export import csv_row as csv_row
from server.audit.export import export_lines as export_lines
from server.audit.export import fhir_audit_event as fhir_audit_event
from server.audit.export import record_export as record_export
from server.audit.reports import FLAG_TITLES as FLAG_TITLES
from server.audit.reports import ActorSummary as ActorSummary
from server.audit.reports import Flag as Flag
from server.audit.reports import PatientReport as PatientReport
from server.audit.reports import UserReport as UserReport
from server.audit.reports import patient_report as patient_report
from server.audit.reports import review_flags as review_flags
from server.audit.reports import user_report as user_report
from server.audit.reports import verify_log as verify_log
from server.audit.search import MAX_LIMIT as MAX_LIMIT
from server.audit.search import PURPOSE as PURPOSE
from server.audit.search import EventFilter as EventFilter
from server.audit.search import Page as Page
from server.audit.search import check_filter as check_filter
from server.audit.search import check_search as check_search
from server.audit.search import decode_cursor as decode_cursor
from server.audit.search import default_window as default_window
from server.audit.search import encode_cursor as encode_cursor
from server.audit.search import filtered_events as filtered_events
from server.audit.search import patient_ids as patient_ids
from server.audit.search import patient_index as patient_index
from server.audit.search import search as search
from server.audit.search import search_in_one_trip as search_in_one_trip
