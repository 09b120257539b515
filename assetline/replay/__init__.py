"""Replaying a range of a line topic, or dead-lettered messages, as a new attempt.

:mod:`.ranges` turns ``--from``/``--to`` into offsets per partition, :mod:`.rewrite` makes the
new attempt and the replay headers (pure), :mod:`.republish` copies a range with one batched,
idempotent producer.
"""
