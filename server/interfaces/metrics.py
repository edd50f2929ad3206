"""HL7 listener counters in Prometheus text: message types, ACK codes and reasons only.

Labels come from fixed vocabularies (the message types we take, HL7 error names, framing
problems), never from a message's content, so no label can carry patient data. Counters
live in the process that counts them: `chartdesk hl7 listen --metrics-port` serves its own.
"""

from __future__ import annotations

import threading
from collections import Counter

from server.records.hl7 import EVENTS

# Upper bounds of the time-to-ACK histogram, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_lock = threading.Lock()
RECEIVED: Counter[str] = Counter()  # message type
ACCEPTED: Counter[str] = Counter()  # message type
REJECTED: Counter[tuple[str, str]] = Counter()  # (ACK code, reason)
ACK_BUCKETS: Counter[float] = Counter()
ACK_TOTAL = {"count": 0, "sum": 0.0}
REFUSED_PEERS = {"count": 0}  # connections closed: address not in CHARTDESK_HL7_ALLOWED_PEERS


def message_label(message_type: str, event: str) -> str:
    """`ADT^A01` for the types we take, `other` for anything else (never raw input)."""
    if message_type in EVENTS and event in EVENTS[message_type]:
        return f"{message_type}^{event}"
    return "other"


def observe(*, label: str, code: str, reason: str | None, seconds: float) -> None:
    """Count one answered message: its type, its ACK code (and reason) and time to ACK."""
    with _lock:
        RECEIVED[label] += 1
        if code == "AA":
            ACCEPTED[label] += 1
        else:
            REJECTED[(code, reason or "error")] += 1
        ACK_TOTAL["count"] += 1
        ACK_TOTAL["sum"] += seconds
        for bound in BUCKETS:
            if seconds <= bound:
                ACK_BUCKETS[bound] += 1


def count_refused_peer() -> None:
    """Count one connection closed because its address is not an allowed peer."""
    with _lock:
        REFUSED_PEERS["count"] += 1


def metrics_text() -> str:
    """The HL7 counters in Prometheus text format (empty series are left out)."""
    with _lock:
        received, accepted = sorted(RECEIVED.items()), sorted(ACCEPTED.items())
        rejected, buckets = sorted(REJECTED.items()), dict(ACK_BUCKETS)
        count, total = int(ACK_TOTAL["count"]), float(ACK_TOTAL["sum"])
        refused_peers = REFUSED_PEERS["count"]
    lines = [
        "# HELP chartdesk_hl7_connections_refused_total Connections from addresses not allowed.",
        "# TYPE chartdesk_hl7_connections_refused_total counter",
        f"chartdesk_hl7_connections_refused_total {refused_peers}",
        "# HELP chartdesk_hl7_messages_received_total HL7 messages answered, by type.",
        "# TYPE chartdesk_hl7_messages_received_total counter",
        *(f'chartdesk_hl7_messages_received_total{{type="{t}"}} {n}' for t, n in received),
        "# HELP chartdesk_hl7_messages_accepted_total HL7 messages answered AA, by type.",
        "# TYPE chartdesk_hl7_messages_accepted_total counter",
        *(f'chartdesk_hl7_messages_accepted_total{{type="{t}"}} {n}' for t, n in accepted),
        "# HELP chartdesk_hl7_messages_rejected_total HL7 messages answered AE/AR, by reason.",
        "# TYPE chartdesk_hl7_messages_rejected_total counter",
        *(
            f'chartdesk_hl7_messages_rejected_total{{ack="{c}",reason="{r}"}} {n}'
            for (c, r), n in rejected
        ),
        "# HELP chartdesk_hl7_ack_seconds Time from a whole message read to its ACK written.",
        "# TYPE chartdesk_hl7_ack_seconds histogram",
    ]
    for bound in BUCKETS:  # observe() counts each answer in every bucket it fits: cumulative
        lines.append(f'chartdesk_hl7_ack_seconds_bucket{{le="{bound}"}} {buckets.get(bound, 0)}')
    lines += [
        f'chartdesk_hl7_ack_seconds_bucket{{le="+Inf"}} {count}',
        f"chartdesk_hl7_ack_seconds_sum {total:.6f}",
        f"chartdesk_hl7_ack_seconds_count {count}",
    ]
    return "\n".join(lines) + "\n"
