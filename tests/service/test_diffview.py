"""The patch as the dashboard draws it (service/diffview.py): files, numbers, tokens,
and what a hostile or huge patch becomes."""

from __future__ import annotations

from rclaude_infra.service import diffview
from rclaude_infra.service.diffview import diff_files

PATCH = '''diff --git a/app.py b/app.py
index 1111111..2222222 100644
--- a/app.py
+++ b/app.py
@@ -1,2 +1,4 @@ def top():
 def add(a, b):
-    return a - b
+    """The sum.
+    <script>alert(1)</script>"""
+    return a + b
diff --git a/logo.png b/logo.png
new file mode 100644
index 0000000..3333333
Binary files /dev/null and b/logo.png differ
diff --git a/old.md b/new.md
similarity index 90%
rename from old.md
rename to new.md
index 4444444..5555555 100644
--- a/old.md
+++ b/new.md
@@ -1 +1 @@
-hello
+changed
\\ No newline at end of file
'''


def _text(line: dict) -> str:
    return "".join(text for _, text in line["tokens"])


def test_files_with_their_status_counts_and_line_numbers() -> None:
    app, logo, doc = diff_files(PATCH)
    assert (app["name"], app["status"], app["added"], app["removed"]) == (
        "app.py", "modified", 3, 1)
    assert (logo["status"], logo["binary"], logo["hunks"]) == ("added", True, [])
    assert (doc["old_name"], doc["name"], doc["status"]) == ("old.md", "new.md", "renamed")
    hunk = app["hunks"][0]
    assert hunk["header"] == "@@ -1,2 +1,4 @@ def top():"
    rows = [(line["kind"], line["old"], line["new"], _text(line)) for line in hunk["lines"]]
    assert rows == [(" ", 1, 1, "def add(a, b):"), ("-", 2, None, "    return a - b"),
                    ("+", None, 2, '    """The sum.'),
                    ("+", None, 3, '    <script>alert(1)</script>"""'),
                    ("+", None, 4, "    return a + b")]
    assert doc["hunks"][0]["lines"][-1]["kind"] == "\\"


def test_code_is_highlighted_as_the_file_has_it() -> None:
    lines = diff_files(PATCH)[0]["hunks"][0]["lines"]
    assert ["k", "def"] in lines[0]["tokens"]
    # The docstring's second line is still inside the string: the new side is lexed whole.
    assert lines[3]["tokens"][0][0].startswith("s")
    assert any(css == "o" and text == "-" for css, text in lines[1]["tokens"])
    # Markup in the code is a token's text, never a tag of its own.
    assert all(css in ("", "w") or css.isalnum() for line in lines for css, _ in line["tokens"])


def test_a_patch_that_does_not_parse_is_shown_as_plain_lines() -> None:
    hostile = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,5 +1,5 @@\n+only one\n"
    (only,) = diff_files(hostile)
    assert only["name"] == "(patch)"
    assert [_text(line) for line in only["hunks"][0]["lines"]] == hostile.splitlines()
    assert diff_files("") == [] and diff_files("\n \n") == []


def test_a_large_patch_is_shown_without_highlighting(monkeypatch) -> None:
    monkeypatch.setattr(diffview, "MAX_HIGHLIGHTED_LINES", 3)
    lines = diff_files(PATCH)[0]["hunks"][0]["lines"]
    assert all(line["tokens"] == [["", _text(line)]] for line in lines)


def test_a_very_long_line_is_not_lexed(monkeypatch) -> None:
    monkeypatch.setattr(diffview, "MAX_HIGHLIGHTED_LINE", 10)
    lines = diff_files(PATCH)[0]["hunks"][0]["lines"]
    assert lines[0]["tokens"] == [["", "def add(a, b):"]]


def test_a_file_of_no_known_language_is_plain() -> None:
    patch = PATCH.replace("app.py", "app.unknown-ext")
    assert diff_files(patch)[0]["hunks"][0]["lines"][0]["tokens"] == [["", "def add(a, b):"]]
