"""Campaign fan-out: one request template x a segments file -> many requests with stable ids.

Pure functions (no Kafka): :mod:`.expand` reads and expands the inputs, :mod:`.ids` derives
the ids, :mod:`.progress` summarises completions. :mod:`.track` follows a campaign on the line
(completions, review table); it is not imported here, so the pure part loads without Kafka.
``assetline campaign`` wires them to the terminal.
"""

from assetline.campaign.expand import (
    Campaign,
    CampaignInputError,
    Segment,
    expand,
    load_template,
    read_segments,
)
from assetline.campaign.ids import canonical_json, request_id_for, row_digest, template_digest
from assetline.campaign.progress import CampaignSummary, parse_duration

__all__ = [
    "Campaign",
    "CampaignInputError",
    "CampaignSummary",
    "Segment",
    "canonical_json",
    "expand",
    "load_template",
    "parse_duration",
    "read_segments",
    "request_id_for",
    "row_digest",
    "template_digest",
]
