"""One Settings object, read from CHARTDESK_* environment variables (and `.env`)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DenialRule(BaseModel):
    """Where a payer's denial goes: a named queue, for a CARC group/reason and/or a payer."""

    queue: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    group: str | None = Field(default=None, max_length=2)  # CARC group: CO, PR, OA, PI, CR
    reason: str | None = Field(default=None, max_length=5)  # CARC code, e.g. 16
    payer: str | None = Field(default=None, max_length=60)  # the 835's payer name (N1*PR)


class Settings(BaseSettings):
    """Every setting Chartdesk reads; README documents each one."""

    model_config = SettingsConfigDict(env_prefix="CHARTDESK_", env_file=".env", extra="ignore")

    env: Literal["production", "development"] = "production"
    database_url: str = "sqlite:///./var/chartdesk.db"
    # PostgreSQL connections each process keeps open (plus up to 10 more at peaks). Requests
    # beyond it wait for a connection instead of opening and closing one each time.
    db_pool_size: int = Field(default=30, ge=1)
    keyring_file: Path | None = None
    # Optional AWS KMS key wrapping data keys instead of the keyring's local KEKs.
    kms_key_id: str | None = None
    kms_endpoint_url: str | None = None
    kms_region: str = "us-east-1"
    session_idle_minutes: int = Field(default=15, ge=1)
    session_max_hours: int = Field(default=12, ge=1)
    session_warning_seconds: int = Field(default=120, ge=10)
    lease_minutes: int = Field(default=20, ge=1)
    max_leased_items: int = Field(default=1, ge=1)
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    due_days_after_discharge: int = Field(default=3, ge=0)
    hold_reasons: list[str] = ["physician query", "missing documentation", "other"]
    # An open physician query is escalated to supervisors after this many business days.
    query_escalation_business_days: int = Field(default=2, ge=1)
    # Reminders of escalated queries by mail (off without a host): a link only, no PHI.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "chartdesk@localhost"
    smtp_starttls: bool = False
    query_escalation_emails: list[str] = []  # supervisors' addresses
    public_url: str = "http://127.0.0.1:8000"  # where links in mails point
    # Break-glass: the reasons a coder or supervisor may give to open a chart outside their
    # own work. A list, not free text, so that no patient data reaches the audit log.
    emergency_reasons: list[str] = [
        "urgent clinical or billing question",
        "physician or facility request",
        "correcting a coding error",
        "other",
    ]
    # QA scores: how much a principal-diagnosis change weighs against one other code error.
    qa_principal_weight: float = Field(default=2.0, ge=1.0, le=10.0)
    # QA payment difference: (DRG relative weight after − before) × this base rate (USD).
    qa_base_rate: float = Field(default=6500.0, ge=0)
    trusted_origins: list[str] = []
    # Reverse proxies whose X-Forwarded-For is believed (the client address in the audit log
    # and the per-address sign-in limit come from it). Default none: any local process
    # could otherwise forge both.
    trusted_proxies: list[str] = []
    log_level: str = "INFO"
    demo_file: Path | None = None  # set by `chartdesk demo`: shows demo codes on sign-in
    # Rate limits (issue 7). Sign-in: counted in the database, so every process shares them.
    signin_rate_per_minute: int = Field(default=20, ge=1)  # per source IP
    signin_account_rate_per_minute: int = Field(default=10, ge=1)  # per username
    # Token use: counted in each process (a limit of N allows N per process per minute).
    token_rate_per_minute: int = Field(default=1200, ge=1)  # per token
    token_ip_rate_per_minute: int = Field(default=2400, ge=1)  # per source IP, any token
    # Hospital single sign-on (OpenID Connect). Empty discovery URL: SSO is off.
    oidc_discovery_url: str | None = None  # https://idp/.well-known/openid-configuration
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid profile email"
    oidc_group_claim: str = "groups"
    oidc_role_map: dict[str, list[str]] = {}  # IdP group -> Chartdesk roles, JSON
    oidc_auto_create: bool = False  # False: only link to an existing user (username/email)
    oidc_require_mfa: bool = False  # require amr mfa/otp/hwk or an acr in oidc_mfa_acr_values
    oidc_mfa_acr_values: list[str] = []
    oidc_redirect_uri: str | None = None  # default: this server's /auth/oidc/callback
    # Billing (issue 6): who sends 837 claims, to whom, and for which provider. The demo
    # defaults are placeholders; set the real ones from the clearinghouse enrolment.
    billing_submitter_name: str = "CHARTDESK DEMO HOSPITAL"
    billing_submitter_id: str = "CHARTDESK01"  # ISA06/GS02 and NM109 of loop 1000A
    billing_submitter_contact: str = "BILLING OFFICE"
    billing_submitter_phone: str = "6175550100"
    billing_receiver_name: str = "DEMO CLEARINGHOUSE"
    billing_receiver_id: str = "CLEARINGHOUSE1"  # ISA08/GS03 and NM109 of loop 1000B
    billing_provider_name: str = "CHARTDESK DEMO HOSPITAL"
    billing_provider_npi: str = "1234567893"  # must pass the NPI check digit (Luhn, 80840)
    billing_provider_tax_id: str = "123456789"  # EIN, 9 digits
    billing_provider_taxonomy: str = "282N00000X"  # general acute care hospital
    billing_provider_address: str = "1 MAIN ST"
    billing_provider_city: str = "BOSTON"
    billing_provider_state: str = "MA"
    billing_provider_zip: str = "021011234"  # ZIP+4, 9 digits
    billing_attending_name: str = "DEMO, ATTENDING"  # 837I attending provider "LAST, FIRST"
    billing_attending_npi: str = "1245319599"
    # NM109 of loop 2010BB when the encounter's Coverage carries no payer id: first by payer
    # name (JSON object, names compared case-insensitively), then one id for every payer.
    # Empty: a claim without a payer id is a claim edit, never a placeholder.
    billing_payer_ids: dict[str, str] = {}
    billing_payer_id: str = ""
    # Place of service of outpatient professional claims: "office" (11) or "hospital" (22,
    # on-campus outpatient hospital). Emergency is 23, inpatient 21.
    billing_facility_setting: Literal["office", "hospital"] = "hospital"
    # Per facility (the encounter's facility name, compared case-insensitively), JSON:
    # {"Hilltown Community Health Centers Inc": "office"}; others take the setting above.
    billing_facility_settings: dict[str, Literal["office", "hospital"]] = {}
    # Denials from the payers' 835s go back to the coder who coded the claim, unless a rule
    # sends them to a named queue (JSON list, first match wins; a rule's omitted keys match
    # anything): [{"group": "CO", "reason": "16", "payer": "Acme Health Plan", "queue":
    # "denials"}]. A denial of an item with no coder on record goes to the denials queue.
    billing_denial_rules: list[DenialRule] = []
    billing_denials_queue: str = Field(default="denials", pattern=r"^[a-z0-9_-]{1,64}$")
    billing_usage: Literal["P", "T"] = "T"  # ISA15: T test, P production
    warm_code_index: bool = True  # build the ICD-10-CM search index at startup
    # Audit chain (issue 5). The sealer runs in a thread of every app process (0: off).
    audit_seal_interval_seconds: float = Field(default=0.5, ge=0)
    audit_checkpoint_events: int = Field(default=1000, ge=1)  # sign after this many events
    audit_checkpoint_seconds: int = Field(default=60, ge=1)  # ...or after this long
    audit_checkpoint_file: Path | None = None  # each signed checkpoint also appended here
    # How much earlier than the checkpoint signed before its sealing an event's time may
    # honestly be (its transaction, or an older one holding back the sealer, was open across
    # that checkpoint). Verify reports an event earlier than that as back-dated.
    audit_clock_slack_seconds: int = Field(default=600, ge=0)
    # Compliance review flags.
    audit_timezone: str = "UTC"  # the hospital's zone, for "unusual hours"
    audit_work_hours: tuple[int, int] = (6, 20)  # sign-ins outside [start, end) are flagged
    audit_denied_threshold: int = Field(default=5, ge=1)  # refusals per user per day
    audit_view_claim_ratio: float = Field(default=2.0, ge=1)  # views > ratio x claims + 5
    # HL7 v2 over MLLP (issue 21): `chartdesk hl7 listen`.
    # Senders allowed to deliver (MSH-4 sending facility or MSH-3 sending application,
    # namespace id); empty: accept every sender.
    hl7_allowed_senders: list[str] = []
    hl7_tls_cert_file: Path | None = None  # both set: the listener speaks TLS only
    hl7_tls_key_file: Path | None = None
    # Who may connect at all (the MSH sender fields are the sender's own words): addresses or
    # networks, and/or client certificates signed by this CA. Off loopback, one is required.
    hl7_allowed_peers: list[str] = []
    hl7_tls_client_ca_file: Path | None = None
    hl7_read_timeout_seconds: float = Field(default=60, gt=0)  # silent connections dropped
    hl7_max_message_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    hl7_timezone: str = "UTC"  # zone of HL7 times that carry no offset
    # Benchmark only (issue 8): records sealed and opened without encryption, so `make bench`
    # can measure the cipher's cost. Honoured only in development; refused in production.
    bench_null_cipher: bool = False

    @field_validator(
        "keyring_file",
        "demo_file",
        "audit_checkpoint_file",
        "hl7_tls_cert_file",
        "hl7_tls_key_file",
        "hl7_tls_client_ca_file",
        mode="before",
    )
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        """`CHARTDESK_X_FILE=` (empty) means unset, not the current directory."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("trusted_proxies", "hl7_allowed_peers")
    @classmethod
    def _proxy_addresses(cls, value: list[str]) -> list[str]:
        """Each trusted proxy is an IP address or network (CIDR); "*" is refused."""
        for entry in value:
            try:
                ipaddress.ip_network(entry)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @model_validator(mode="after")
    def _no_null_cipher_in_production(self) -> Settings:
        if self.bench_null_cipher and self.env == "production":
            raise ValueError("CHARTDESK_BENCH_NULL_CIPHER is for benchmarks: refused in production")
        return self

    @property
    def production(self) -> bool:
        """True when cookies must be Secure and demo keys are refused."""
        return self.env == "production"

    @property
    def session_cookie_name(self) -> str:
        """`__Host-` prefixed in production so the cookie is bound to our origin."""
        return "__Host-chartdesk_session" if self.production else "chartdesk_session"

    @property
    def is_sqlite(self) -> bool:
        """Whether the configured database is the embedded SQLite default."""
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests clear the cache to change them)."""
    return Settings()
