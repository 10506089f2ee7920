"""The rules, grouped by subject: one module per subject, each rule declared next to the check that emits it.

    SEARCH_QUERY = rule("NOTIF-030", "error", "search input valueString is not a relative query", _REF)

    @emits(SEARCH_QUERY)
    def _check_query(value: object, location: str) -> Iterator[Finding]:
        if not isinstance(value, str):
            yield SEARCH_QUERY.finding(f"saw {show(value)}; expected 'Type?params'", location)

The catalogue (validators/catalogue.py) loads this folder as a whole; `speeltuin rules --format json`
names, for every rule, the module and function that emits it.
"""
