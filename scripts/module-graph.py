#!/usr/bin/env python3
"""The module graph of src/: which module uses which, and every import cycle.

    python3 scripts/module-graph.py            # edges and cycles, exit 1 if there is a cycle
    python3 scripts/module-graph.py --dot      # Graphviz (pipe to `dot -Tsvg`)

A module is a file under src/ (`src/dialect/soap.rs` is `dialect::soap`, a `mod.rs` is its
folder). An edge A -> B is a `crate::B…` or `super::…` path in A's source that names B
(outside `#[cfg(test)]` blocks). Edges between a module and its own parent or children are
left out: a parent declaring its children and children using their parent's shared types is
the layering, not a cycle. Reads text only; nothing is compiled.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return "::".join(parts) or "crate"


def non_test_source(text):
    """The text without comments and `#[cfg(test)] mod … { … }` blocks (brace-matched)."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def main():
    modules = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".rs") and "tables" not in dirpath:
                path = os.path.join(dirpath, f)
                modules[module_of(path)] = non_test_source(open(path, encoding="utf-8").read())
    names = sorted(modules, key=len, reverse=True)
    edges = set()
    for mod, text in modules.items():
        parent = mod.rsplit("::", 1)[0] if "::" in mod else "crate"
        for m in re.finditer(r"\b(crate|super)::((?:\w+::)*\w+)", text):
            root, rest = m.groups()
            full = rest if root == "crate" else (f"{parent}::{rest}" if parent != "crate" else rest)
            target = next((n for n in names if full == n or full.startswith(n + "::")), None)
            if target is None:
                continue
            related = target == mod or mod.startswith(target + "::") or target.startswith(mod + "::")
            if not related:
                edges.add((mod, target))
    if "--dot" in sys.argv:
        print("digraph upsbridge {")
        for a, b in sorted(edges):
            print(f'  "{a}" -> "{b}";')
        print("}")
        return 0
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    for a in sorted(graph):
        print(f"{a} -> {', '.join(sorted(graph[a]))}")
    # Strongly connected components (Tarjan): every component of more than one module is a cycle.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(set(graph) | {b for _, b in edges}):
        if v not in index:
            visit(v)
    print()
    if not sccs:
        print("no import cycles")
        return 0
    for comp in sccs:
        print("cycle:", " <-> ".join(comp))
    return 1


if __name__ == "__main__":
    sys.exit(main())
