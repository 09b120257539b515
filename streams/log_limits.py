"""Quiet broker outages: repeated log lines are summarised, an outage is two lines.

Without this, a one-minute Kafka outage made the worker write 26,000-46,000 ERROR lines (measured
here: 26,214 in 65 s, ~400 a second): every aiokafka client (Faust's consumer and producer, one
consumer per notify topic, ...) logs each failed reconnect and metadata refresh.
:class:`LogLimiter` is a :class:`logging.Filter` the worker puts on the root logger's handlers:

- a *cause* is (logger, level, message template, exception types in the arguments) for warnings
  and errors of the client library's loggers (``aiokafka.*``), whose arguments name nodes and
  errnos of one and the same cause, and for any warning that names a connection error (notify's
  "consumer of <topic> stopped (KafkaConnectionError)", one per topic); for everything else
  only an exact repeat (same text, object addresses aside) is the same cause, so two different
  requests' errors are never folded;
- the first record of a cause always passes; later ones within ``interval_s`` are counted, not
  written; the next one after the interval passes with ``(N similar in the last Xs)``, and
  :meth:`LogLimiter.tick` writes the count of a cause that has gone quiet;
- the first connection error (refused connect, failed metadata update, node not ready) opens an
  *outage*: one WARNING. While it lasts, the client library's lines are shown once per cause
  and then only counted (a reminder WARNING per interval for a long outage). The outage closes
  when no connection error has been seen for ``recovery_quiet_s`` (aiokafka retries every
  ~0.1 s while a broker is down, measured: never a gap over 0.1 s in a 65 s outage, so silence
  means its requests are answered again): one INFO line with the duration and the counts;
- causes live in a bounded LRU map (``max_causes``); an evicted cause's pending count is written.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: Loggers whose arguments vary within one cause (node ids, errno text, partitions).
CLIENT_LOGGERS = ("aiokafka",)
#: Evidence, in a client record's text, that the broker cannot be reached.
_CONNECTION_ERROR = re.compile(
    r"Unable connect to node|Unable to (?:update|request) metadata|KafkaConnectionError|"
    r"NodeNotReadyError|Connect call failed|Connection refused"
)
_DIGITS = re.compile(r"\d+")
#: An object's address (``<X object at 0x7f...>``): asyncio's "Unclosed ..." reports differ by it.
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]+\b")
_DECIDED = "_assetline_log_limit"  # a record seen by several handlers is decided once

log = logging.getLogger(__name__)


@dataclass
class _Cause:
    level: int
    sample: str  # the first record's text, for a summary written by tick()
    window_start: float
    client: bool  # client library or connection error: folded into an outage while one lasts
    suppressed: int = 0


class LogLimiter(logging.Filter):
    """Rate-limit repeated records per cause; log a broker outage and its end once each."""

    def __init__(
        self,
        *,
        interval_s: float = 60.0,
        recovery_quiet_s: float = 5.0,
        max_causes: int = 512,
        clock: Callable[[], float] = time.monotonic,
        report: logging.Logger | None = None,
    ) -> None:
        super().__init__()
        if interval_s <= 0 or recovery_quiet_s <= 0 or max_causes < 1:
            raise ValueError("interval_s and recovery_quiet_s must be > 0, max_causes >= 1")
        self.interval_s = interval_s
        self.recovery_quiet_s = recovery_quiet_s
        self.max_causes = max_causes
        self._clock = clock
        self._report = report or log
        self._causes: OrderedDict[tuple[object, ...], _Cause] = OrderedDict()
        self._outage_since: float | None = None
        self._reminded = 0.0
        self._last_connection_error = 0.0
        self._outage_errors = 0
        self._outage_hidden = 0

    @property
    def in_outage(self) -> bool:
        return self._outage_since is not None

    @property
    def cause_count(self) -> int:
        return len(self._causes)

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, _DECIDED, None)
        if decided is not None:
            return bool(decided)
        passed = self._decide(record)
        setattr(record, _DECIDED, passed)
        return passed

    def _decide(self, record: logging.LogRecord) -> bool:
        if record.name == self._report.name:
            return True  # our own outage/summary lines
        now = self._clock()
        warning = record.levelno >= logging.WARNING
        connection = warning and bool(_CONNECTION_ERROR.search(_text(record)))
        if connection:
            self._on_connection_error(record, now)
        client = _is_client(record.name) or connection
        key = _cause_key(record, templated=client and warning)
        cause = self._causes.get(key)
        if cause is None:
            self._remember(key, _Cause(record.levelno, _text(record), now, client))
            return True
        self._causes.move_to_end(key)
        if cause.client and self.in_outage:  # the outage's own lines account for it
            cause.suppressed += 1
            self._outage_hidden += 1
            return False
        if now - cause.window_start < self.interval_s:
            cause.suppressed += 1
            return False
        if cause.suppressed:
            elapsed = now - cause.window_start
            _append(record, f" ({cause.suppressed} similar in the last {elapsed:.0f}s)")
        cause.window_start, cause.suppressed = now, 0
        return True

    def _on_connection_error(self, record: logging.LogRecord, now: float) -> None:
        self._last_connection_error = now
        if self._outage_since is None:
            self._outage_since = self._reminded = now
            self._outage_errors = self._outage_hidden = 0
            self._report.warning(
                "Kafka unreachable (%s); the worker keeps retrying and shows only the first "
                "line of each client error until Kafka answers again",
                _text(record),
            )
        self._outage_errors += 1

    def _remember(self, key: tuple[object, ...], cause: _Cause) -> None:
        self._causes[key] = cause
        while len(self._causes) > self.max_causes:
            _, evicted = self._causes.popitem(last=False)
            if evicted.suppressed and not (evicted.client and self.in_outage):
                self._summarise(evicted, self._clock())

    def _summarise(self, cause: _Cause, now: float) -> None:
        self._report.log(
            cause.level,
            "%s (%d similar in the last %.0fs)",
            cause.sample,
            cause.suppressed,
            now - cause.window_start,
        )
        cause.window_start, cause.suppressed = now, 0

    def tick(self) -> None:
        """Close an outage that has gone quiet, or remind once per interval that it lasts;
        write the count of a cause that went quiet."""
        now = self._clock()
        if self._outage_since is not None:
            if now - self._last_connection_error >= self.recovery_quiet_s:
                self._recovered()
            elif now - self._reminded >= self.interval_s:
                self._reminded = now
                self._report.warning(
                    "Kafka still unreachable after %.0fs (%d connection errors so far)",
                    now - self._outage_since,
                    self._outage_errors,
                )
        for cause in list(self._causes.values()):
            if cause.client and self.in_outage:
                continue
            if cause.suppressed and now - cause.window_start >= self.interval_s:
                self._summarise(cause, now)

    def _recovered(self) -> None:
        assert self._outage_since is not None
        self._report.info(
            "Kafka reachable again after %.0fs: %d connection errors, %d repeated client log "
            "lines not shown (the first of each is above)",
            self._last_connection_error - self._outage_since,
            self._outage_errors,
            self._outage_hidden,
        )
        self._outage_since = None
        # Counted in the line above; the next outage shows its causes afresh.
        for key in [k for k, c in self._causes.items() if c.client]:
            del self._causes[key]


def install_log_limits(
    logger: logging.Logger,
    *,
    interval_s: float,
    loop: asyncio.AbstractEventLoop,
    tick_s: float = 1.0,
) -> LogLimiter:
    """Put one limiter on every handler of ``logger`` and tick it on ``loop``.

    On the handlers, not the logger: a logger's filters do not see records propagated from
    child loggers such as ``aiokafka.client``. The outage/summary logger is set to INFO so the
    recovery line is created; a handler's own level still decides whether it is written.
    """
    limiter = LogLimiter(interval_s=interval_s, report=log)
    log.setLevel(logging.INFO)
    for handler in logger.handlers:
        handler.addFilter(limiter)

    def tick() -> None:
        limiter.tick()
        loop.call_later(tick_s, tick)

    loop.call_later(tick_s, tick)
    return limiter


def _is_client(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in CLIENT_LOGGERS)


def _text(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string is the caller's bug; logging reports it later
        return str(record.msg)


def _cause_key(record: logging.LogRecord, *, templated: bool) -> tuple[object, ...]:
    if not templated:
        return (record.name, record.levelno, _ADDRESS.sub("0x?", _text(record)))
    errors = [
        arg.__name__ if isinstance(arg, type) else type(arg).__name__
        for arg in _args(record)
        if isinstance(arg, BaseException)
        or (isinstance(arg, type) and issubclass(arg, BaseException))
    ]
    if record.exc_info and record.exc_info[0] is not None:
        errors.append(record.exc_info[0].__name__)
    template = _DIGITS.sub("N", str(record.msg))
    return (record.name, record.levelno, template, tuple(errors))


def _args(record: logging.LogRecord) -> tuple[object, ...]:
    args = record.args
    if isinstance(args, tuple):
        return args
    return () if args is None else (args,)


def _append(record: logging.LogRecord, suffix: str) -> None:
    # () not None: mode's formatter turns a None into (None,) and the line fails to format.
    record.msg, record.args = _text(record) + suffix, ()
