"""Every rule sits next to the one check function that emits it, and that function says so.

Read from the source of each module under validators/rules/ (so the test sees what a reader sees):
- every rule is a module-level `NAME = rule(...)`;
- exactly one function of the module declares it with `@emits(NAME, ...)`, and that is where it is checked;
- a function declares exactly the rules of its module that its body names, but for `NAME.id` comparisons
  (declarations cannot drift);
- the rules a function declares are defined in the block of rule definitions right above it.
A table-driven check declares the rules of its table with `@emits(*rules_in(TABLE))`; those rules are
defined in the block right above the table.
"""
from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from types import ModuleType

import pytest

from validators.catalogue import catalogue, rule_modules
from validators.findings import Rule, emits, rule, rules_in

MODULES = {module.__name__: module for module in rule_modules()}


def _rule_definition(node: ast.stmt) -> str | None:
    """The name bound by `NAME = rule(...)`, else None."""
    if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "rule"):
        return node.targets[0].id
    return None


def _assigned_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _names(node: ast.AST, among: set[str]) -> set[str]:
    """The names of `among` used in `node`, but for `NAME.id` (which only compares with a rule)."""
    compared = {id(n.value) for n in ast.walk(node) if isinstance(n, ast.Attribute) and n.attr == "id"}
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in among and id(n) not in compared}


class Layout:
    def __init__(self, module: ModuleType) -> None:
        self.body = ast.parse(inspect.getsource(module)).body
        self.rules = {name for node in self.body if (name := _rule_definition(node))}
        self.functions = [node for node in self.body if isinstance(node, ast.FunctionDef)]
        self.tables = {name: node for node in self.body
                       if (name := _assigned_name(node)) and not _rule_definition(node)}

    def declared(self, function: ast.FunctionDef) -> tuple[set[str], dict[str, set[str]]]:
        """The rules `function` declares by name, and by table (table name -> the rules named in it)."""
        named: set[str] = set()
        by_table: dict[str, set[str]] = {}
        for decorator in function.decorator_list:
            if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name)
                    and decorator.func.id == "emits"):
                continue
            for arg in decorator.args:
                if isinstance(arg, ast.Name):
                    named.add(arg.id)
                elif (isinstance(arg, ast.Starred) and isinstance(arg.value, ast.Call)
                      and getattr(arg.value.func, "id", None) == "rules_in"
                      and isinstance(arg.value.args[0], ast.Name)):
                    table = arg.value.args[0].id
                    by_table[table] = _names(self.tables[table].value, self.rules)
        return named & self.rules, by_table

    def all_declared(self, function: ast.FunctionDef) -> set[str]:
        named, by_table = self.declared(function)
        return named.union(*by_table.values())

    def rules_right_above(self, node: ast.stmt) -> set[str]:
        """The rule definitions in the unbroken run of statements just above `node`."""
        above: set[str] = set()
        index = self.body.index(node) - 1
        while index >= 0 and (name := _rule_definition(self.body[index])):
            above.add(name)
            index -= 1
        return above


def test_every_rule_is_a_plain_definition() -> None:
    """The layout tests below see every catalogued rule, so each is a module-level `NAME = rule(...)`."""
    seen = {getattr(module, name).id for module in MODULES.values() for name in Layout(module).rules}
    assert seen == set(catalogue())


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_rule_is_declared_by_one_function(name: str) -> None:
    layout = Layout(MODULES[name])
    declared_by: dict[str, list[str]] = {rule_name: [] for rule_name in layout.rules}
    for function in layout.functions:
        for rule_name in layout.all_declared(function):
            declared_by[rule_name].append(function.name)
    wrong = {rule_name: functions for rule_name, functions in declared_by.items() if len(functions) != 1}
    assert not wrong, f"rules not declared by exactly one function: {wrong}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_declarations_match_what_the_function_names(name: str) -> None:
    layout = Layout(MODULES[name])
    for function in layout.functions:
        declared, by_table = layout.declared(function)
        named = set().union(*(_names(statement, layout.rules) for statement in function.body))
        assert declared == named, f"{function.name} names {sorted(named)} but declares {sorted(declared)}"
        used_tables = set().union(*(_names(statement, set(by_table)) for statement in function.body))
        assert used_tables == set(by_table), f"{function.name} declares the rules of tables it does not use"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_rules_sit_right_above_their_check(name: str) -> None:
    layout = Layout(MODULES[name])
    for function in layout.functions:
        named, by_table = layout.declared(function)
        misplaced = named - layout.rules_right_above(function)
        assert not misplaced, f"{sorted(misplaced)} are not defined right above {function.name}"
        for table, rules in by_table.items():
            misplaced = rules - layout.rules_right_above(layout.tables[table])
            assert not misplaced, f"{sorted(misplaced)} are not defined right above the table {table}"


def test_catalogue_names_the_declaring_function() -> None:
    for rule_id, entry in catalogue().items():
        assert entry.where is not None, f"{rule_id}: no check function declares it"
        check = getattr(MODULES[entry.where.module], entry.where.function)
        assert entry.rule in check.__emits__


def test_a_rule_declared_by_two_functions_is_refused() -> None:
    from validators import catalogue as catalogue_module

    twice = rule("TEST-001", "error", "declared twice", "SPEC §0")
    fake = ModuleType("validators.rules.fake")

    @emits(twice)
    def first() -> None: ...

    @emits(twice)
    def second() -> None: ...

    for function in (first, second):
        function.__module__ = fake.__name__
        setattr(fake, function.__name__, function)
    fake.TWICE = twice
    with pytest.raises(ValueError, match="TEST-001 is declared by both first and second"):
        catalogue_module._declaring_checks(fake)


def test_rules_in_finds_each_rule_of_a_table_once_in_order() -> None:
    @dataclass(frozen=True)
    class Row:
        rule: Rule
        path: str

    one, two, three = (rule(f"TEST-00{n}", "warning", f"rule {n}", "SPEC §0") for n in (1, 2, 3))
    table = {"a": (Row(two, "x"), Row(one, "y")), "b": [Row(two, "z")], "c": {"d": three}, "e": "no rule"}
    assert rules_in(table) == (two, one, three)
    assert rules_in({}) == ()
