"""Chapter 5's exercises: held out by whole countries."""

from __future__ import annotations

from ._judge import Case, Mistake, Verdict, judge


def check_country_split(fn, *, solution: bool = False) -> Verdict | None:
    """Chapter 5: ``fn(countries, seed)`` splits the cities (one country each) into (train, test) lists of
    indices: every index once, no country on both sides, between 15 % and 35 % held out."""
    from ..probe import cities

    countries = list(cities().countries)

    def parts(got):
        train, test = ([int(i) for i in part] for part in got)
        return train, test

    def right(got, _expected=None) -> bool:
        try:
            train, test = parts(got)
        except (TypeError, ValueError):
            return False
        if sorted(train + test) != list(range(len(countries))):
            return False
        shared = {countries[i] for i in train} & {countries[i] for i in test}
        return not shared and 0.15 <= len(test) / len(countries) <= 0.35

    def shares_a_country(got, cs, seed) -> bool:
        train, test = parts(got)
        return bool({cs[i] for i in train} & {cs[i] for i in test})

    cases = [Case((countries, s), f"the {len(countries)} cities with seed {s}", f"{len(countries)} 个城市、种子 {s}", None)
             for s in (0, 1)]
    mistakes = (
        Mistake("some country has cities on both sides: you held out cities, not countries, so the probe can "
                "recognise the country instead of reading a position.",
                "有的国家两边都有城市：你留出的是城市而不是国家，探针就能靠认出国家来作答，而不是读出位置。",
                matches=shares_a_country),
        Mistake("the two lists must hold every index exactly once, with 15–35 % of them held out.",
                "两个列表合起来要恰好包含每个下标一次，并且留出 15%–35%。",
                matches=lambda got, cs, seed: True),
    )
    return judge("country_split", fn, cases, mistakes, solution=solution, same=right)
