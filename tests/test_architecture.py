"""The house rules that a linter cannot see in one file: no import cycle anywhere in the package, and
the layers contract of pyproject.toml (run by `lint-imports` in CI) keeps holding."""

from __future__ import annotations

import grimp


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (iterative: the package is deep enough to matter)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def package_graph() -> dict[str, set[str]]:
    graph = grimp.build_graph("attnlab", exclude_type_checking_imports=True)
    # a package's __init__ importing its own modules is how a package shows its face, not a cycle
    return {
        m: {d for d in graph.find_modules_directly_imported_by(m) if not m.startswith(d + ".")} for m in graph.modules
    }


def test_strongly_connected_finds_a_planted_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_the_package():
    cycles = strongly_connected(package_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_layers_contract_holds(capsys):
    from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

    status = lint_imports()  # reads the contract from pyproject.toml, as `lint-imports` does
    assert status == EXIT_STATUS_SUCCESS, capsys.readouterr().out[-3000:]
