#!/usr/bin/env python3
"""Counts the lines of business logic of the example shop: non-blank,
non-comment lines (Go comments, Python comments and docstrings) of the files
that hold the rules, per domain and language. Tests, generated code and
plumbing (sdk/, examples/go/shop, the Python runner and server) are not
counted.

    scripts/loc.py                          print the table (Markdown)
    scripts/loc.py --update examples/README.md   rewrite the table between
                                            <!-- loc:begin --> and <!-- loc:end -->
    scripts/loc.py --check examples/README.md    fail if that table is stale
"""
import ast
import glob
import io
import os
import sys
import tokenize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- loc:begin -->", "<!-- loc:end -->"

# (component, language, files relative to ROOT, shown as)
ROWS = [(d, "Go", ["examples/go/%s/*.go" % d], "examples/go/%s/" % d)
        for d in ("customer", "product", "cart", "inventory", "order", "fulfillment")]
ROWS += [
    ("customer", "Python", ["examples/python/customer/logic.py"], "examples/python/customer/logic.py"),
    ("saga loyalty-earn", "Go", ["examples/go/sagas/loyalty_earn.go"], "examples/go/sagas/loyalty_earn.go"),
    ("saga fulfillment", "Go", ["examples/go/sagas/fulfillment.go"], "examples/go/sagas/fulfillment.go"),
    ("saga cancellation", "Go", ["examples/go/sagas/cancellation.go"], "examples/go/sagas/cancellation.go"),
    ("process manager checkout", "Go", ["examples/go/checkout/checkout.go"], "examples/go/checkout/checkout.go"),
    ("projector order-summary", "Go", ["examples/go/ordersummary/*.go"], "examples/go/ordersummary/"),
]


def go_lines(text):
    """Non-blank lines that are not only a // or /* */ comment."""
    count, in_block = 0, False
    for line in text.splitlines():
        s = line.strip()
        code = ""
        while s:
            if in_block:
                end = s.find("*/")
                if end < 0:
                    s = ""
                    break
                s, in_block = s[end + 2:].strip(), False
            elif s.startswith("//"):
                break
            elif s.startswith("/*"):
                s, in_block = s[2:], True
            else:
                code = s
                break
        if code:
            count += 1
    return count


def python_lines(text):
    """Non-blank lines that are neither comments nor part of a docstring."""
    skip = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                skip.update(range(first.lineno, first.end_lineno + 1))
    code_lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(code_lines - skip)


def count(patterns):
    total = 0
    for pattern in patterns:
        files = sorted(f for f in glob.glob(os.path.join(ROOT, pattern)) if not f.endswith("_test.go"))
        if not files:
            raise SystemExit("loc: no files match " + pattern)
        for f in files:
            with open(f, encoding="utf-8") as fh:
                text = fh.read()
            total += go_lines(text) if f.endswith(".go") else python_lines(text)
    return total


def table(doc_dir=ROOT):
    """The Markdown table, with links relative to doc_dir."""
    out = ["| Component | Language | LOC | Implementation |", "|---|---|---:|---|"]
    for name, lang, patterns, shown in ROWS:
        link = os.path.relpath(os.path.join(ROOT, shown), doc_dir) + ("/" if shown.endswith("/") else "")
        out.append("| %s | %s | %d | [%s](%s) |" % (name, lang, count(patterns), shown, link))
    return "\n".join(out) + "\n"


def replace(doc, new):
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        raise SystemExit("loc: %s ... %s markers not found" % (BEGIN, END))
    return doc[:start + len(BEGIN)] + "\n" + new + doc[end:]


def main(argv):
    if not argv:
        sys.stdout.write(table())
        return 0
    if len(argv) != 2 or argv[0] not in ("--update", "--check"):
        sys.stderr.write(__doc__)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        doc = fh.read()
    fresh = replace(doc, table(os.path.dirname(os.path.abspath(argv[1]))))
    if argv[0] == "--check":
        if fresh != doc:
            sys.stderr.write("loc: the table in %s is stale; run scripts/loc.py --update %s\n" % (argv[1], argv[1]))
            return 1
        return 0
    with open(argv[1], "w", encoding="utf-8") as fh:
        fh.write(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
