"""assetline.replay.republish: the report table printed after a replay."""

from __future__ import annotations

from assetline.replay.ranges import PartitionRange
from assetline.replay.republish import PartitionCounts, ReplayReport, report_table


def test_report_table_has_a_row_per_partition_and_the_totals() -> None:
    report = ReplayReport("rid", "p.raw", "p.raw", dry_run=True)
    report.partitions = {
        1: PartitionCounts(read=3, written=2, undecodable=1),
        0: PartitionCounts(read=10, written=10, superseded=0),
    }
    ranges = [PartitionRange(0, 100, 110), PartitionRange(1, 0, 3)]
    assert report_table(report, ranges).splitlines() == [
        "partition  from   to  read  would write  undecodable  superseded",
        "        0   100  110    10           10            0           0",
        "        1     0    3     3            2            1           0",
        "    total               13           12            1           0",
    ]
