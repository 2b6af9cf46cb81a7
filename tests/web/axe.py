"""axe-core in the browser tests: every screen checked at WCAG 2.1 AA.

axe-core comes from npm: ``scripts/test.sh`` runs ``npm install --no-save
axe-core@4`` into ``tests/node_modules`` (git-ignored).  Without it the
tests that use :func:`check` are skipped, saying how to install it.

The script goes in through the DevTools protocol (``page.evaluate``), so the
pages' Content-Security-Policy (``script-src 'self'``) stays as it is.
"""

from __future__ import annotations

import pathlib

import pytest

AXE = pathlib.Path(__file__).parents[1] / "node_modules" / "axe-core" / "axe.min.js"
WCAG21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# label-content-name-mismatch (WCAG 2.5.3) is experimental in axe 4, so off
# unless asked for: the staff overview's tiles once failed it.
EXTRA_RULES = {"label-content-name-mismatch": {"enabled": True}}


def axe_source():
    if not AXE.exists():
        pytest.skip(f"axe-core is not installed ({AXE}): run scripts/test.sh, or "
                    "npm install --no-save --prefix tests axe-core@4")
    return AXE.read_text(encoding="utf-8")


def violations(page):
    """axe's violations on ``page`` as it stands (WCAG 2.1 A and AA)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source() + "\n;true")
    result = page.evaluate(
        """([tags, rules]) => axe.run(document, {runOnly: {type: "tag", values: tags},
                                                   rules: rules, resultTypes: ["violations"]})""",
        [WCAG21_AA, EXTRA_RULES])
    return result["violations"]


def check(page, where):
    """Fail with axe's findings (rule, impact, elements) unless ``page`` has none."""
    found = violations(page)
    assert not found, f"axe on {where}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:4]} "
        f"{v['nodes'][0].get('failureSummary', '')[:200]}" for v in found)
