#!/usr/bin/env python3
"""Code-shape figures for issue notes: lines of Rust per crate and the longest functions.

Usage: scripts/code_figures.py [N]   (N longest functions, default 5)
A function's length runs from its `fn` line to the line closing its body (brace matching
on code with strings and comments stripped; good enough for a ranking, not a parser).
"""
import os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
most = int(sys.argv[1]) if len(sys.argv) > 1 else 5
files = subprocess.run(["git", "ls-files", "*.rs"], cwd=ROOT, capture_output=True, text=True).stdout.split()
files = [f for f in files if not f.startswith("fuzz/")]

per_crate = {}
funcs = []
fn_re = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")
strip_re = re.compile(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])\'|//.*$')
for f in files:
    crate = f.split("/")[0]
    with open(os.path.join(ROOT, f), encoding="utf-8") as h:
        lines = h.read().split("\n")
    per_crate[crate] = per_crate.get(crate, 0) + len(lines) - 1
    stack = []  # (name, start line, depth at which the body opened)
    depth = 0
    pending = None
    for i, line in enumerate(lines):
        m = fn_re.match(line)
        if m:
            pending = (m.group(6), i)
        code = strip_re.sub("", line)
        for ch in code:
            if ch == "{":
                depth += 1
                if pending:
                    stack.append((pending[0], pending[1], depth))
                    pending = None
            elif ch == "}":
                if stack and stack[-1][2] == depth:
                    name, start, _ = stack.pop()
                    funcs.append((i - start + 1, f"{f}:{start + 1}", name))
                depth -= 1
        if pending and code.rstrip().endswith(";"):
            pending = None  # a declaration without a body (trait item)

print("| crate | lines of Rust |")
print("|---|---:|")
for crate in sorted(per_crate):
    print(f"| {crate} | {per_crate[crate]} |")
print(f"| **all** | {sum(per_crate.values())} |")
print()
print("| longest functions | lines |")
print("|---|---:|")
for n, where, name in sorted(funcs, reverse=True)[:most]:
    print(f"| `{name}` ({where}) | {n} |")
