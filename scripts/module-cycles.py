#!/usr/bin/env python3
"""Reports `crate::`/`super::` dependency cycles between a crate's modules.

Usage: scripts/module-cycles.py crates/caravan-server [crates/caravan-http ...]

Each file under `src/` is one module (`lib.rs` is the crate root, `a/mod.rs`
and `a.rs` are `a`). An edge A -> B is a path `crate::b::...` (or
`super::...`, resolved) written anywhere in A's file, naming B or an item
of B; a path that names an item of the root (`crate::Item`) points at the
root. A parent declaring `mod child;` is not an edge; a parent that uses
its child's items (`pub use child::X`) is. Exits 1 if any cycle exists.
"""
import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super)((?:::\w+)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)((?:::\w+)*)::\{([^;]*)\}\s*;", re.S)
LOCAL_USE = re.compile(r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+(\w+)((?:::\w+)*)")


def module_name(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def resolve(modules: set, path: tuple) -> tuple:
    """The longest prefix of `path` that is a module."""
    for end in range(len(path), -1, -1):
        if path[:end] in modules:
            return path[:end]
    return ()


def edges_of(modules: set, module: tuple, is_mod_file: bool, text: str) -> set:
    here = module if is_mod_file else module[:-1]  # the module's parent for `super`
    found = set()

    def add(root: str, rest: list):
        base = () if root == "crate" else here[:-1] if is_mod_file else module[:-1]
        if root == "super":
            base = module[:-1]
        target = resolve(modules, base + tuple(rest))
        if target != module:
            found.add(target)

    for root, head, group in USE_GROUP.findall(text):
        prefix = [p for p in head.split("::") if p]
        for item in re.split(r",", group):
            item = item.strip().split(" as ")[0].strip()
            if not item or item == "self":
                add(root, prefix)
                continue
            inner = item.split("::")
            add(root, prefix + [p.strip("{} ") for p in inner if p.strip("{} ")])
    for root, rest in PATH.findall(text):
        add(root, [p for p in rest.split("::") if p])
    # `use child::x;` inside a parent names a child module directly.
    for head, _ in LOCAL_USE.findall(text):
        child = module + (head,)
        if child in modules and child != module:
            found.add(child)
    return found


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

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
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def name(module: tuple) -> str:
    return "::".join(("crate",) + module)


def check(crate: Path) -> bool:
    src = crate / "src"
    files = {module_name(src, f): f for f in sorted(src.rglob("*.rs"))}
    modules = set(files)
    graph = {}
    for module, file in files.items():
        text = strip_comments(file.read_text())
        is_mod = file.name in ("mod.rs", "lib.rs", "main.rs")
        graph[module] = edges_of(modules, module, is_mod, text)
    found = cycles(graph)
    if not found:
        print(f"{crate}: {len(modules)} modules, no cycles")
        return True
    for component in found:
        members = set(component)
        print(f"{crate}: cycle among " + ", ".join(name(m) for m in component))
        for m in component:
            for w in sorted(graph[m] & members):
                print(f"    {name(m)} -> {name(w)}")
    return False


def main() -> int:
    crates = [Path(arg) for arg in sys.argv[1:]] or [Path("crates/caravan-server")]
    ok = all([check(crate) for crate in crates])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
