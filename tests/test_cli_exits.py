"""How a harvest's ending becomes ``cc-collect``'s exit code: a pure function, by table."""

from __future__ import annotations

import pytest

from cc_collect_async.cli.exits import ExitCode, HarvestEnd, harvest_exit_code

CASES = [
    # (auth rejected, output failed, interrupted, failed units) -> exit code
    ((False, False, False, 0), ExitCode.OK),
    ((False, False, False, 3), ExitCode.UNITS_FAILED),
    ((False, False, True, 0), ExitCode.INTERRUPTED),
    ((False, False, True, 3), ExitCode.INTERRUPTED),  # the rerun finishes and retries
    ((False, True, False, 0), ExitCode.OUTPUT),
    ((False, True, True, 3), ExitCode.OUTPUT),  # no rerun helps before the disk is fixed
    ((True, False, False, 0), ExitCode.AUTH),
    ((True, True, True, 3), ExitCode.AUTH),  # every rerun would be rejected the same way
]


@pytest.mark.parametrize(("end", "code"), CASES)
def test_the_most_urgent_condition_decides_the_exit_code(
    end: tuple[bool, bool, bool, int], code: ExitCode
) -> None:
    auth, output, interrupted, failed = end
    assert (
        harvest_exit_code(
            HarvestEnd(
                auth_rejected=auth,
                output_failed=output,
                interrupted=interrupted,
                failed_units=failed,
            )
        )
        is code
    )


def test_exit_codes_are_the_documented_numbers() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130]
