"""Counting ballots: latest vote per voter, weights as cast, exact thresholds."""

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinkflow_bot.governance.rules import Rules
from pinkflow_bot.governance.tally import Ballot, Choice, current_ballots, tally

APPROVE, REJECT, ABSTAIN, RETRACT = Choice.APPROVE, Choice.REJECT, Choice.ABSTAIN, Choice.RETRACT


def ballots(*specs):
    """Ballots from (voter, choice, weight) triples, in casting order."""
    return [Ballot(voter=voter, choice=choice, weight=weight, sequence=n) for n, (voter, choice, weight) in enumerate(specs, 1)]


def test_no_ballots():
    t = tally([], Rules())
    assert (t.total, t.approval_rate, t.quorum_met, t.is_approved) == (0, 0.0, False, False)
    assert t.ballots == ()


def test_a_voters_latest_ballot_counts():
    t = tally(ballots(("alice", APPROVE, 1), ("bob", APPROVE, 1), ("alice", REJECT, 1)), Rules())
    assert (t.approvals, t.rejections, t.total) == (1, 1, 2)
    assert [(b.voter, b.choice) for b in t.ballots] == [("bob", APPROVE), ("alice", REJECT)]


def test_latest_is_by_sequence_not_by_position():
    early = Ballot("alice", REJECT, 1, sequence=1)
    late = Ballot("alice", APPROVE, 1, sequence=9)
    assert current_ballots([late, early]) == (late,)


def test_voters_compare_case_insensitively():
    t = tally(ballots(("Alice", APPROVE, 1), ("alice", REJECT, 1), ("ALICE", ABSTAIN, 1)), Rules())
    assert (t.total, t.abstentions, t.approvals, t.rejections) == (1, 1, 0, 0)


def test_a_retraction_removes_the_vote_and_a_new_vote_brings_it_back():
    retracted = ballots(("alice", APPROVE, 3), ("alice", RETRACT, 0))
    assert tally(retracted, Rules()).total == 0
    again = retracted + [Ballot("alice", REJECT, 3, sequence=3)]
    t = tally(again, Rules())
    assert (t.total, t.rejections, t.reject_weight) == (1, 1, 3)


def test_the_weight_stored_with_the_ballot_is_used():
    t = tally(ballots(("alice", APPROVE, 3), ("bob", REJECT, 1), ("carol", ABSTAIN, 2)), Rules())
    assert (t.approve_weight, t.reject_weight, t.abstain_weight) == (3, 1, 2)
    assert t.approval_rate == 75.0


def test_abstentions_count_toward_quorum_but_not_the_rate():
    t = tally(ballots(("a", APPROVE, 1), ("b", ABSTAIN, 1), ("c", ABSTAIN, 1)), Rules())
    assert (t.total, t.quorum_met, t.approval_rate, t.is_approved) == (3, True, 100.0, True)


def test_only_abstentions_never_pass():
    t = tally(ballots(("a", ABSTAIN, 1), ("b", ABSTAIN, 1), ("c", ABSTAIN, 1)), Rules(threshold=0))
    assert t.quorum_met and t.approval_rate == 0.0 and not t.is_approved


@pytest.mark.parametrize(
    ("approve", "reject", "threshold", "approved"),
    [
        (3, 1, 75, True),  # exactly at the threshold passes
        (2, 1, 67, False),  # 66.666...% is under 67 even though it rounds to 66.67
        (2, 1, 66, True),
        (200, 100, 67, False),
        (29999, 10001, 75, False),  # 74.9975% shows as 75.0 but is under 75
        (67, 33, 67, True),
        (1, 2, 34, False),  # 33.33%
        (1, 0, 100, True),
        (99, 1, 100, False),
        (1, 99, 1, True),
        (0, 1, 0, False),  # nobody approved
    ],
)
def test_threshold_is_compared_exactly(approve, reject, threshold, approved):
    t = tally(ballots(("a", APPROVE, approve), ("r", REJECT, reject), ("x", ABSTAIN, 1)), Rules(threshold=threshold))
    assert t.quorum_met
    assert t.is_approved is approved


def test_rate_is_rounded_to_two_decimals():
    assert tally(ballots(("a", APPROVE, 2), ("b", REJECT, 1)), Rules()).approval_rate == 66.67
    assert tally(ballots(("a", APPROVE, 1), ("b", REJECT, 2)), Rules()).approval_rate == 33.33


def test_quorum_counts_distinct_voters():
    rules = Rules(min_votes=3)
    two = ballots(("a", APPROVE, 5), ("b", APPROVE, 5), ("a", APPROVE, 5))
    assert not tally(two, rules).quorum_met and not tally(two, rules).is_approved
    three = two + [Ballot("c", REJECT, 1, sequence=10)]
    assert tally(three, rules).quorum_met and tally(three, rules).is_approved


def test_seed_dict_keeps_the_seed_field_names():
    t = tally(ballots(("a", APPROVE, 3), ("b", REJECT, 1), ("c", ABSTAIN, 1)), Rules())
    assert t.as_seed_dict() == {
        "total": 3,
        "approvals": 1,
        "rejections": 1,
        "abstentions": 1,
        "approvalRate": 75.0,
        "isApproved": True,
        "approveWeight": 3,
        "rejectWeight": 1,
        "abstainWeight": 1,
        "quorumMet": True,
    }


def test_choices_stored_as_text_are_read_back():
    ballot = Ballot("alice", "approve", 1, sequence=1, cast_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert ballot.choice is Choice.APPROVE
    with pytest.raises(ValueError):
        Ballot("alice", "maybe", 1, sequence=2)
    with pytest.raises(ValueError):
        Ballot("alice", APPROVE, -1, sequence=3)


# --- Properties -------------------------------------------------------------------------

VOTERS = ["alice", "Alice", "bob", "carol", "dave", "erin", "frank"]


@st.composite
def ballot_lists(draw):
    """Ballots with distinct sequence numbers, in an arbitrary order."""
    count = draw(st.integers(min_value=0, max_value=25))
    sequences = draw(st.lists(st.integers(min_value=0, max_value=10_000), min_size=count, max_size=count, unique=True))
    return [
        Ballot(
            voter=draw(st.sampled_from(VOTERS)),
            choice=draw(st.sampled_from(list(Choice))),
            weight=draw(st.integers(min_value=0, max_value=5)),
            sequence=sequence,
        )
        for sequence in sequences
    ]


rules_strategy = st.builds(
    Rules,
    threshold=st.integers(min_value=0, max_value=100),
    min_votes=st.integers(min_value=1, max_value=6),
)


def latest_choice_per_voter(items):
    latest = {}
    for ballot in sorted(items, key=lambda b: b.sequence):
        latest[ballot.voter.lower()] = ballot.choice
    return latest


@settings(max_examples=200)
@given(ballot_lists(), rules_strategy, st.randoms(use_true_random=False))
def test_order_of_input_does_not_matter(items, rules, random):
    shuffled = list(items)
    random.shuffle(shuffled)
    assert tally(shuffled, rules) == tally(items, rules)


@settings(max_examples=200)
@given(ballot_lists(), rules_strategy)
def test_tally_invariants(items, rules):
    t = tally(items, rules)
    latest = latest_choice_per_voter(items)
    assert t.total == sum(1 for choice in latest.values() if choice is not RETRACT)
    assert t.total == t.approvals + t.rejections + t.abstentions == len(t.ballots)
    assert 0.0 <= t.approval_rate <= 100.0
    assert t.quorum_met == (t.total >= rules.min_votes)
    if t.is_approved:
        assert t.quorum_met
        assert t.approve_weight > 0
        assert 100 * t.approve_weight >= rules.threshold * (t.approve_weight + t.reject_weight)
    assert [b.sequence for b in t.ballots] == sorted(b.sequence for b in t.ballots)
    assert all(b.choice is not RETRACT for b in t.ballots)


@settings(max_examples=200)
@given(ballot_lists(), rules_strategy, st.integers(min_value=0, max_value=5))
def test_a_new_approval_never_lowers_the_rate(items, rules, weight):
    before = tally(items, rules)
    newcomer = Ballot("newcomer", APPROVE, weight, sequence=20_000)
    after = tally([*items, newcomer], rules)
    assert after.approval_rate >= before.approval_rate
    assert after.total == before.total + 1
    assert after.is_approved or not before.is_approved
