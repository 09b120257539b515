"""Alert routing: ``<prefix>.alerts`` grouped per cause and sent to Slack, PagerDuty or a
signed webhook (:mod:`.grouping` pure, :mod:`.deliver` guarded HTTP, :mod:`.router` the
consumer)."""
