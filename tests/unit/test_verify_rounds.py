"""The rounds of ``circuit --search estimate --verify-fraction`` on a hand-built table of estimates and exact
effects: which edges each round path-patches, checked against the rule worked out by hand."""

from types import SimpleNamespace

import torch

from induction_nnsight.causal.paths.search import Verification, _verify

TARGET = (1, 0)
BASE, LOSS = 1.0, 2.0  # the target's clean induction score, the clean loss
# run index -> (estimated drop, exact drop); on v the drop is the rise of the loss
GROUPS = {
    "total": {0: (0.9, 0.1), 1: (0.8, 0.6), 2: (0.5, 0.2), 3: (0.3, 0.7), 4: (0.2, 0.25), 5: (0.05, 0.9)},
    "k": {6: (0.4, 0.4), 7: (0.35, 0.35), 8: (0.3, 0.3)},  # k's estimated score is exact
    "v": {9: (0.3, 0.05), 10: (0.2, 0.3), 11: (0.1, 0.2)},
}


def _search(rule: Verification) -> list[list[int]]:
    groups = {
        (TARGET, path): sorted((round(-est, 4), (0, i), i) for i, (est, _) in members.items())
        for path, members in GROUPS.items()
    }
    exact = {i: drop for members in GROUPS.values() for i, (_, drop) in members.items()}
    calls: list[list[int]] = []

    def run(indices):  # scores [run, layer, batch, head], losses [run, batch]
        calls.append(list(indices))
        scores = torch.zeros(len(indices), 2, 1, 1)
        scores[:, TARGET[0], 0, TARGET[1]] = torch.tensor([BASE - exact[i] for i in indices])
        return scores, torch.tensor([[LOSS + exact[i]] for i in indices])

    clean = SimpleNamespace(scores={TARGET[0]: torch.tensor([BASE])}, loss=LOSS)
    found, scores, losses = _verify(groups, rule, clean, run, set())
    assert found == [i for call in calls for i in call] and scores.shape[0] == len(found) == losses.shape[0]
    return calls


def test_rounds_go_on_while_an_estimate_reaches_the_fraction_of_the_nth_exact_drop():
    # round 1: the 2 strongest estimates per path. total: exact drops 0.1, 0.6, 2nd largest 0.1, bar 0.05:
    # 2 and 3 (the next two above it); k: bar 1 x 0.35 (its estimates are exact), 8 (0.3) stays out;
    # v: rises 0.05, 0.3, bar 0.025: 11. Round 2: total's 2nd largest is now 0.6, bar 0.3: 4 (0.2) and
    # 5 (0.05, whose exact 0.9 the rule cannot see) stay out; v's bar 0.1, nothing left. Round 3: none.
    assert _search(Verification(2, 0.5, 0)) == [[0, 1, 6, 7, 9, 10], [2, 3, 11]]


def test_without_a_fraction_one_round():
    assert _search(Verification(2, None, 0)) == [[0, 1, 6, 7, 9, 10]]


def test_a_smaller_fraction_reaches_further():
    # rounds 1 and 2 as above (total's round-2 bar 0.005 still takes only the next two); round 3: bar
    # 0.05 x 0.6 = 0.03 takes 4 and 5; round 4: 2nd largest 0.7, bar 0.035, none left. k still stops at its
    # exact 2nd (the fraction does not apply to exact estimates).
    assert _search(Verification(2, 0.05, 0)) == [[0, 1, 6, 7, 9, 10], [2, 3, 11], [4, 5]]
