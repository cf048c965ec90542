"""privacy.min_count: no count of fewer people than the threshold is published, alone or by difference.

One rule for the exposition and the reports (define once). A table of people counts is keyed by
label values; along a label, the value ``all`` is the total of the other values (distinct people,
so a total may be less than the sum of its cells when people belong to several). Three steps:

1. **Primary suppression**: a count between 1 and ``min_count - 1`` is published as 0.
2. **Complementary suppression** (gauges): wherever a published total minus its published cells
   along one label would give a number between 1 and ``min_count - 1`` (one hidden cell, or a few
   whose sum is small), the smallest published cell of that group is withheld too, until the
   difference is 0, at least ``min_count``, or negative (cells that share people). A withheld cell
   may be the total of another group: the rule runs until no group gives anything back.
3. **Counters** never go down, so a cell once published stays published: instead of withholding a
   cell, a total is published as the sum of its published cells when that is lower (the smaller of
   the two is non-decreasing when both are), so the difference is never positive.

Ratios and averages follow the people counts they are made of: a series of theirs is not published
when one of those counts, with the same label values, is withheld (``withheld_among``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

ALL = "all"

Key = TypeVar("Key", bound=tuple[Hashable, ...])


def margins(keys: Iterable[tuple[Hashable, ...]]) -> list[int]:
    """The positions whose value ``all`` appears in some key: the labels a total is given along."""
    found: set[int] = set()
    for key in keys:
        found.update(position for position, value in enumerate(key) if value == ALL)
    return sorted(found)


def _group(key: tuple[Hashable, ...], position: int) -> tuple[Hashable, ...]:
    return key[:position] + key[position + 1 :]


def protect(
    values: Mapping[Key, float], min_count: int, *, monotonic: bool = False, unpublished: Iterable[Key] = ()
) -> tuple[dict[Key, float], set[Key]]:
    """The counts as published, and the keys withheld (published as 0 though not 0).

    ``monotonic``: the counts are counters (see the module's step 3). ``unpublished``: keys whose
    count is never shown (a reader knows only that it is missing): withheld from the start."""
    hidden = set(unpublished)
    published = {
        key: (0.0 if 0 < value < min_count or key in hidden else float(value)) for key, value in values.items()
    }
    withheld = {key for key, value in values.items() if 0 < value < min_count or (key in hidden and value)}
    if min_count <= 1:
        return published, withheld
    positions = margins(published)
    if not positions:
        return published, withheld
    # For each label with totals: group (the key without it) -> its total's key and its cells' keys.
    totals: dict[int, dict[tuple[Hashable, ...], Key]] = {p: {} for p in positions}
    cells: dict[int, dict[tuple[Hashable, ...], list[Key]]] = {p: {} for p in positions}
    for key in published:
        for position in positions:
            if key[position] == ALL:
                totals[position][_group(key, position)] = key
            else:
                cells[position].setdefault(_group(key, position), []).append(key)
    if monotonic:
        _cap_totals(published, withheld, positions, totals, cells)
        return published, withheld
    pending = [(position, group) for position in positions for group in totals[position]]
    while pending:
        position, group = pending.pop()
        total = totals[position][group]
        members = cells[position].get(group, [])
        difference = published[total] - sum(published[member] for member in members)
        if not 0 < difference < min_count:
            continue
        candidates = [member for member in members if published[member] > 0]
        # (A positive difference with no published cell left would be the total itself, >= min_count.)
        chosen = min(candidates, key=lambda member: (published[member], str(member)))
        published[chosen] = 0.0
        withheld.add(chosen)
        # Every group the withheld count belongs to, as a cell or as a total, is looked at again.
        for other in positions:
            pending.append((other, _group(chosen, other)))
    return published, withheld


def _cap_totals(
    published: dict[Key, float],
    withheld: set[Key],
    positions: Sequence[int],
    totals: Mapping[int, Mapping[tuple[Hashable, ...], Key]],
    cells: Mapping[int, Mapping[tuple[Hashable, ...], list[Key]]],
) -> None:
    """Counters: each total is at most the sum of its published cells, along every label it totals
    (the totals of fewer labels first, so a total of totals sees them capped)."""
    ordered = sorted(
        {key for position in positions for key in totals[position].values()},
        key=lambda key: sum(1 for position in positions if key[position] == ALL),
    )
    for key in ordered:
        for position in positions:
            if key[position] != ALL:
                continue
            members = cells[position].get(_group(key, position))
            if not members:
                continue
            ceiling = sum(published[member] for member in members)
            if published[key] > ceiling:
                published[key] = ceiling
                withheld.add(key)


def protect_nested(
    position: int, values: Mapping[Key, float], min_count: int, *, unpublished: Iterable[Key] = ()
) -> tuple[dict[Key, float], set[Key]]:
    """Counts of nested thresholds at ``position`` (numbers; each value's people include those of the
    larger ones, as inactive accounts over 30 and 90 days): the people between a threshold and the next
    are the counts protected (across the other labels' totals too); each threshold is published as the
    sum of the published ones from it up. The keys withheld are those whose people up to the next
    threshold are."""

    def threshold(key: tuple[Hashable, ...]) -> float:
        try:
            return float(str(key[position]))
        except ValueError:
            return float("inf")

    chains: dict[tuple[Hashable, ...], list[Key]] = {}
    for key in values:
        chains.setdefault(_group(key, position), []).append(key)
    between: dict[Key, float] = {}
    for keys in chains.values():
        keys.sort(key=threshold)
        for index, key in enumerate(keys):
            following = values[keys[index + 1]] if index + 1 < len(keys) else 0.0
            between[key] = values[key] - following
    published_between, withheld = protect(between, min_count, unpublished=unpublished)
    published: dict[Key, float] = {}
    for keys in chains.values():
        running = 0.0
        for key in reversed(keys):
            running += published_between[key]
            published[key] = running
    return published, withheld


def withheld_among(
    withheld: Iterable[tuple[Hashable, ...]], labels: Sequence[str], of: Sequence[str]
) -> set[tuple[Hashable, ...]]:
    """The withheld keys of a family with ``labels``, as values of the labels ``of`` (a ratio's labels,
    all among ``labels``): the ratio's series that must not be published."""
    positions = [labels.index(name) for name in of]
    return {tuple(key[position] for position in positions) for key in withheld}
