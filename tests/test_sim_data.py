"""The simulator's data set: determinism, shape, awkward content, ground truth, laziness."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from cc_collect_async.sim import DATA_KINDS, Dataset, DatasetSpec, record_key

SPEC = DatasetSpec(lives=30)


def dump(dataset: Dataset) -> str:
    """Everything the data set can say, as one string."""
    parts = []
    for live in dataset.lives():
        parts.append(repr(live))
        for kind in DATA_KINDS:
            parts.append(json.dumps(dataset.records(live.liveid, kind), ensure_ascii=False))
        parts.append(json.dumps(dataset.gather(live.liveid), ensure_ascii=False))
        parts.append(repr(dataset.peak(live.liveid)))
    for room in dataset.rooms:
        parts.append(json.dumps(dataset.client_info(room), ensure_ascii=False))
    return "\n".join(parts)


def test_same_seed_same_data() -> None:
    assert dump(Dataset(SPEC)) == dump(Dataset(DatasetSpec(lives=30)))


def test_different_seed_different_data() -> None:
    one, other = Dataset(SPEC), Dataset(DatasetSpec(seed=8, lives=30))
    assert {live.liveid for live in one.lives()}.isdisjoint(live.liveid for live in other.lives())
    assert set(one.rooms).isdisjoint(other.rooms)
    first = one.lives()[0]
    second = other.lives()[0]
    assert one.records(first.liveid, "chat") != other.records(second.liveid, "chat")


def test_records_do_not_depend_on_what_was_generated_before() -> None:
    # Lazy generation must not make content depend on the order of requests.
    forwards, backwards = Dataset(SPEC), Dataset(SPEC)
    for live in reversed(backwards.lives()):
        for kind in reversed(DATA_KINDS):
            backwards.records(live.liveid, kind)
    assert dump(forwards) == dump(backwards)


def test_lives_are_sorted_spread_over_rooms_and_inside_the_window() -> None:
    spec = DatasetSpec(lives=40, rooms=5, window_start=datetime(2027, 3, 1, 8), window_days=3)
    dataset = Dataset(spec)
    lives = dataset.lives()
    assert len(lives) == 40
    assert len({live.liveid for live in lives}) == 40
    assert lives == sorted(lives, key=lambda live: (live.start_time, live.liveid))
    assert Counter(live.roomid for live in lives) == {room: 8 for room in dataset.rooms}
    for live in lives:
        assert spec.window_start <= live.start_time < spec.window_start + timedelta(days=3)
        assert live.end_time > live.start_time
        assert dataset.live(live.liveid) == live
    assert dataset.live("0000000000000000") is None


def test_window_start_may_be_aware() -> None:
    utc = datetime(2026, 10, 31, 16, tzinfo=timezone.utc)  # midnight in Beijing
    assert DatasetSpec(window_start=utc).window_start == datetime(2026, 11, 1)


def test_lives_filter_by_window_and_room() -> None:
    dataset = Dataset(SPEC)
    start, end = datetime(2026, 11, 1, 12), datetime(2026, 11, 2, 3)
    room = dataset.rooms[0]
    picked = dataset.lives(start, end, [room])
    assert picked == [
        live for live in dataset.lives() if start <= live.start_time < end and live.roomid == room
    ]
    assert picked
    exact = dataset.lives()[5]
    assert exact in dataset.lives(exact.start_time, exact.start_time + timedelta(seconds=1))
    assert exact not in dataset.lives(exact.start_time - timedelta(hours=1), exact.start_time)


def test_counts_match_the_generated_records() -> None:
    dataset = Dataset(SPEC)
    for live in dataset.lives():
        for kind in DATA_KINDS:
            assert dataset.count(live.liveid, kind) == len(dataset.records(live.liveid, kind))


def test_empty_and_huge_lives() -> None:
    dataset = Dataset(DatasetSpec(lives=22, empty_every=7, huge_every=11))
    chat = {live.liveid: dataset.count(live.liveid, "chat") for live in dataset.lives()}
    empty = [
        live
        for live in dataset.lives()
        if all(dataset.count(live.liveid, kind) == 0 for kind in DATA_KINDS)
    ]
    assert len(empty) == 3  # lives 7, 14 and 21
    assert all(dataset.viewer_count(live.liveid) == 0 for live in empty)
    assert all(dataset.peak(live.liveid) == (0, None) for live in empty)
    huge = [liveid for liveid, count in chat.items() if count >= 1000]
    assert len(huge) == 2  # lives 11 and 22
    for liveid in huge:
        assert dataset.count(liveid, "access") >= 200

    plain = Dataset(DatasetSpec(lives=22, empty_every=0, huge_every=0))
    for live in plain.lives():
        assert all(plain.count(live.liveid, kind) > 0 for kind in DATA_KINDS)
        assert plain.count(live.liveid, "chat") <= 90


def test_volumes_follow_the_spec() -> None:
    dataset = Dataset(
        DatasetSpec(lives=10, chat_per_live=10, votes_per_live=0, empty_every=0, huge_every=0)
    )
    for live in dataset.lives():
        assert 5 <= dataset.count(live.liveid, "chat") <= 15
        assert dataset.records(live.liveid, "vote") == []


def test_natural_keys_are_unique() -> None:
    dataset = Dataset(SPEC)
    for kind in DATA_KINDS:
        keys = [
            record_key(kind, live.liveid, record)
            for live in dataset.lives()
            for record in dataset.records(live.liveid, kind)
        ]
        assert len(keys) == len(set(keys)), kind
    # Ids the vendor calls ids are unique across the whole account, not only per live.
    for kind, field in (
        ("vote", "vote_id"),
        ("answercard", "qvote_id"),
        ("brainstorm", "brainsstom_id"),
    ):
        ids = [
            record["publish_data"][field]
            for live in dataset.lives()
            for record in dataset.records(live.liveid, kind)
        ]
        assert len(ids) == len(set(ids)), kind
    chat_ids = [
        record["id"] for live in dataset.lives() for record in dataset.records(live.liveid, "chat")
    ]
    assert len(chat_ids) == len(set(chat_ids))
    assert all(isinstance(chat_id, int) for chat_id in chat_ids)


def test_access_keys_stay_unique_when_trailing_spaces_are_stripped() -> None:
    dataset = Dataset(SPEC)
    for live in dataset.lives():
        records = dataset.records(live.liveid, "access")
        stripped = {(record["viewerid"], record["enter_time"].strip()) for record in records}
        assert len(stripped) == len(records)


def test_content_is_awkward() -> None:
    dataset = Dataset(SPEC)
    text = dump(dataset)
    for needle in ("中", "😂", "&", "=", "+", "%", '\\"', "'", "\\n", "<b>", "<script>", "\\t"):
        assert needle in text, needle
    access = [r for live in dataset.lives() for r in dataset.records(live.liveid, "access")]
    assert any(record["enter_time"].endswith(" ") for record in access)
    assert any(not record["enter_time"].endswith(" ") for record in access)
    rollcall = [r for live in dataset.lives() for r in dataset.records(live.liveid, "rollcall")]
    assert {record["roll_call_status"] for record in rollcall} == {0, 1}
    assert all(
        (record["confirm_time"] is None) == (record["roll_call_status"] == 0) for record in rollcall
    )


def test_truth_holds_every_record_key_of_the_window() -> None:
    dataset = Dataset(SPEC)
    start, end = datetime(2026, 11, 1, 6), datetime(2026, 11, 2, 6)
    truth = dataset.truth(start, end)
    assert truth.lives == dataset.lives(start, end)
    assert set(truth.keys) == set(DATA_KINDS)
    for kind in DATA_KINDS:
        expected = {
            record_key(kind, live.liveid, record)
            for live in truth.lives
            for record in dataset.records(live.liveid, kind)
        }
        assert truth.keys[kind] == expected
        assert truth.count(kind) == sum(dataset.count(live.liveid, kind) for live in truth.lives)
    assert truth.total() == dataset.total_records(start, end)
    assert {key[0] for keys in truth.keys.values() for key in keys} <= {
        live.liveid for live in truth.lives
    }
    everything = dataset.truth()
    assert everything.total() > truth.total() > 0


def test_record_key_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown record kind"):
        record_key("votes", "X", {})
    with pytest.raises(ValueError, match="unknown record kind"):
        Dataset(SPEC).records(Dataset(SPEC).lives()[0].liveid, "chats")


def test_slice_spans_lives() -> None:
    dataset = Dataset(SPEC)
    room = dataset.rooms[0]
    liveids = [live.liveid for live in dataset.room_lives(room)]
    everything = [record for liveid in liveids for record in dataset.records(liveid, "vote")]
    for offset in range(len(everything) + 2):
        for limit in (1, 2, 5):
            assert (
                dataset.slice(liveids, "vote", offset, limit) == everything[offset : offset + limit]
            )


def test_spec_is_validated() -> None:
    with pytest.raises(ValueError, match="rooms"):
        DatasetSpec(rooms=0)
    with pytest.raises(ValueError, match="chat_per_live"):
        DatasetSpec(chat_per_live=-1)


def test_a_big_data_set_is_built_lazily() -> None:
    big = Dataset(DatasetSpec(lives=10_000))
    assert len(big.lives()) == 10_000
    assert big.total_records() > 1_000_000  # counted without generating anything

    tracemalloc.start()
    try:
        dataset = Dataset(DatasetSpec(lives=2_000))
        total = dataset.total_records()
        for live in dataset.lives()[:120]:  # more lives than the cache keeps
            dataset.records(live.liveid, "access")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 500_000
    # Half a million materialised records would take hundreds of megabytes.
    assert peak < 30 * 2**20
