#!/usr/bin/env python3
"""Builds the English training corpus for the default model from two Debian packages.

Sources (both installed from Debian's archive with `apt-get download`, never from a hub):
  * bible-kjv-text + bible-kjv: the King James Version of the Bible (public domain),
    extracted verse by verse with the package's own `bible` program;
  * python3.11-doc: the prose paragraphs of the Python 3.11 documentation's reStructuredText
    sources (Python Software Foundation License), with code blocks, directives and
    markup removed.

Output: one document per line (a verse, or a documentation paragraph), UTF-8.

Usage: build_corpus.py DEB_DIR OUT_FILE
DEB_DIR holds the unpacked packages (dpkg -x of each .deb into that one folder).
"""
import pathlib
import re
import subprocess
import sys

ROLE = re.compile(r":[a-z:+-]+:`(?:[^`<]*<)?([^`>]*)>?`")
LITERAL = re.compile(r"``([^`]*)``")
LINK = re.compile(r"`([^`<]*?)\s*(?:<[^>]*>)?`_{1,2}")
PROSE = re.compile(r"[A-Za-z]{3,} [a-z]{2,} [a-z]{2,}")


def kjv_verses(root: pathlib.Path):
    exe = root / "usr/bin/bible"
    data = root / "usr/lib"
    out = subprocess.run(
        [str(exe), "-f", "-p", str(data), "Gen1:1-Rev22:21"],
        check=True, capture_output=True, text=True,
    ).stdout
    verse = []
    for line in out.splitlines():
        head = re.match(r"^\s*(?:[0-9]?[A-Za-z]+)?[0-9]+:[0-9]+\s+(.*)$", line)
        if head:
            if verse:
                yield " ".join(verse)
            verse = [head.group(1).strip()]
        elif line.strip():
            verse.append(line.strip())
    if verse:
        yield " ".join(verse)


def clean_rst(text: str) -> str:
    text = ROLE.sub(r"\1", text)
    text = LITERAL.sub(r"\1", text)
    text = LINK.sub(r"\1", text)
    text = text.replace("*", "").replace("|", "")
    text = re.sub(r"\s*::$", ":", text)
    return re.sub(r"\s+", " ", text).strip()


def doc_paragraphs(root: pathlib.Path):
    sources = sorted((root / "usr/share/doc/python3.11/html/_sources").rglob("*.rst.txt"))
    for path in sources:
        in_code = False
        for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            lines = block.splitlines()
            if not lines:
                continue
            indented = lines[0].startswith((" ", "\t"))
            if in_code and indented:
                continue  # body of a literal block or directive
            in_code = False
            first = lines[0].strip()
            if first.startswith(("..", ">>>", "$ ", "+--", "===", "---")):
                in_code = first.startswith("..") or first.startswith(">>>")
                continue
            if block.rstrip().endswith("::"):
                in_code = True
            para = clean_rst(" ".join(l.strip() for l in lines))
            if len(para) > 60 and PROSE.search(para) and not re.search(r"[{};=]{2}", para):
                yield para


def main() -> None:
    root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    docs = list(kjv_verses(root)) + list(doc_paragraphs(root))
    out.write_text("\n".join(docs) + "\n", encoding="utf-8")
    size = out.stat().st_size
    print(f"corpus: {len(docs)} documents, {size / 1e6:.1f} MB -> {out}")
    if size < 5_000_000:
        sys.exit(f"corpus too small ({size} bytes); expected at least 5 MB")


if __name__ == "__main__":
    main()
