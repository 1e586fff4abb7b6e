"""Guideline Markdown renders inert, whatever its author writes."""

import pytest

from governance.rendering import diff_lines, render_guideline

HOSTILE = [
    "<script>alert(1)</script>",
    "[click me](javascript:alert(1))",
    '<img src=x onerror="alert(1)">',
    '<iframe src="https://evil.example"></iframe>',
    '<div style="position:fixed" onclick="steal()">raw html</div>',
    '<a href="JaVaScRiPt:alert(1)">mixed case</a>',
    "<svg onload=alert(1)><circle/></svg>",
    '<form action="https://evil.example"><input name=x></form>',
    "<style>body{display:none}</style>",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_markdown_renders_inert(source):
    html = render_guideline(source).lower()

    for dangerous in ("<script", "javascript:", "onerror", "onclick", "onload", "<iframe",
                      "<svg", "<form", "<style", "data:text", " style="):  # fmt: skip
        assert dangerous not in html, (source, html)


def test_ordinary_markdown_keeps_its_structure():
    html = render_guideline(
        "# Title\n\n- one\n- **two**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "[policy](https://example.org/policy) and `code`"
    )

    assert "<h1>Title</h1>" in html
    assert "<li><strong>two</strong></li>" in html
    assert "<table>" in html
    assert 'href="https://example.org/policy"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert "<code>code</code>" in html


def test_the_diff_marks_added_and_removed_lines():
    lines = diff_lines("a\nb\nc\n", "a\nB\nc\nd\n")

    kinds = [(line.kind, line.text) for line in lines]
    assert ("removed", "b") in kinds
    assert ("added", "B") in kinds
    assert ("added", "d") in kinds
    assert kinds[0][0] == "hunk"
