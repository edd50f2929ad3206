"""The queue domain's public face: queues, work items, claiming, supervision, listing.

One job a file: `queues` (queues and members), `items` (the row lock, transitions, whose
item is whose), `claiming` (Next, leases, holds, the sweep), `supervision` (assign, move,
priority, figures), `listing` (item lists) and `history` (one item's events). Other
domains and the routers call them through this module,
`from server.queue import service as queue_service`.
"""

from __future__ import annotations

from server.queue.claiming import SWEEP_BATCH as SWEEP_BATCH
from server.queue.claiming import claim_next as claim_next
from server.queue.claiming import claim_next_in_one_trip as claim_next_in_one_trip
from server.queue.claiming import heartbeat as heartbeat
from server.queue.claiming import hold as hold
from server.queue.claiming import release as release
from server.queue.claiming import resume as resume
from server.queue.claiming import sweep_expired as sweep_expired
from server.queue.history import ItemHistory as ItemHistory
from server.queue.history import item_history as item_history
from server.queue.items import OPEN_STATUSES as OPEN_STATUSES
from server.queue.items import ItemRow as ItemRow
from server.queue.items import expire_now as expire_now
from server.queue.items import in_my_list as in_my_list
from server.queue.items import item_row as item_row
from server.queue.items import leased_item as leased_item
from server.queue.items import lock_item as lock_item
from server.queue.items import my_item as my_item
from server.queue.items import record_event as record_event
from server.queue.items import transition as transition
from server.queue.items import user_id_of as user_id_of
from server.queue.listing import SORTS as SORTS
from server.queue.listing import ItemFilter as ItemFilter
from server.queue.listing import ItemPage as ItemPage
from server.queue.listing import encounters_of as encounters_of
from server.queue.listing import filter_choices as filter_choices
from server.queue.listing import list_items as list_items
from server.queue.listing import my_items as my_items
from server.queue.listing import supervised_items as supervised_items
from server.queue.queues import QUEUE_NAME as QUEUE_NAME
from server.queue.queues import add_member as add_member
from server.queue.queues import coders as coders
from server.queue.queues import create_queue as create_queue
from server.queue.queues import get_queue as get_queue
from server.queue.queues import is_member as is_member
from server.queue.queues import list_queues as list_queues
from server.queue.queues import members as members
from server.queue.queues import queues_of as queues_of
from server.queue.queues import set_members as set_members
from server.queue.supervision import BULK_ACTIONS as BULK_ACTIONS
from server.queue.supervision import QueueStats as QueueStats
from server.queue.supervision import assign as assign
from server.queue.supervision import bulk_change as bulk_change
from server.queue.supervision import move as move
from server.queue.supervision import queue_stats as queue_stats
from server.queue.supervision import set_priority as set_priority
from server.queue.supervision import stats_version as stats_version
