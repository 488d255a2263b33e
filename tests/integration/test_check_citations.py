"""scripts/check-citations: every citation in the tree points at a page of
docs/ that exists (and at a heading of it, when it names an anchor), none
points outside the repository, and a bad citation makes the check fail
with its file and line (docs/conventions.md#cite-the-projects-own-docs)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "check-citations")
TOPS = ("protocol", "transport", "server", "client", "tests", "scripts", "docs")

# Built from pieces, so that this file does not cite anything itself.
OUTSIDE_NOTE = "DES" + "IGN.md 3.2"
OUTSIDE_SECTION = "sp" + "ec 3.4"
MISSING_PAGE = "docs/" + "protocol/no-such-page.md"
BAD_ANCHOR = "docs/" + "protocol/framing.md" + "#no-such-heading"
GOOD_ANCHOR = "docs/" + "protocol/framing.md" + "#abort"


def run(root):
    return subprocess.run([sys.executable, SCRIPT, root], capture_output=True, text=True, timeout=120)


def append(path, text):
    """Append one line to `path`; returns its line number."""
    with open(path, encoding="utf-8") as f:
        n = f.read().count("\n")
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
    return n + 1


class CheckCitations(unittest.TestCase):
    def test_tree_is_clean(self):
        r = run(ROOT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("every citation points into the repository", r.stdout)

    def test_bad_citations_fail(self):
        with tempfile.TemporaryDirectory() as tmp:
            ignore = shutil.ignore_patterns("build", "vectors", "__pycache__", ".git")
            for top in TOPS:
                shutil.copytree(os.path.join(ROOT, top), os.path.join(tmp, top), ignore=ignore)
            shutil.copy(os.path.join(ROOT, "README.md"), tmp)
            self.assertEqual(run(tmp).returncode, 0, "the copy starts clean")

            hpp = os.path.join(tmp, "server", "bzr", "control.hpp")
            good = append(hpp, f"// A precise citation ({GOOD_ANCHOR}).")
            outside = append(hpp, f"// As the design says ({OUTSIDE_NOTE}).")
            missing = append(hpp, f"// See {MISSING_PAGE}.")
            anchor = append(hpp, f"// See ({BAD_ANCHOR}).")
            py = os.path.join(tmp, "tests", "integration", "harness.py")
            section = append(py, f"# framing ({OUTSIDE_SECTION})")
            md = os.path.join(tmp, "docs", "protocol", "README.md")
            link = append(md, "See [the limits](framing.md#no-such-limit) and [vfs](no-such.md).")

            r = run(tmp)
            self.assertEqual(r.returncode, 1, r.stdout)
            out = r.stdout
            self.assertNotIn(f"server/bzr/control.hpp:{good}:", out)
            self.assertIn(f"server/bzr/control.hpp:{outside}: cites a design/style note outside the repository", out)
            self.assertIn(f"server/bzr/control.hpp:{missing}: cites {MISSING_PAGE}, which does not exist", out)
            self.assertIn(f"server/bzr/control.hpp:{anchor}: cites {BAD_ANCHOR}, but docs/protocol/framing.md "
                          "has no heading with anchor #no-such-heading", out)
            self.assertIn(f"tests/integration/harness.py:{section}: cites a section of the outside spec", out)
            self.assertIn(f"docs/protocol/README.md:{link}: cites framing.md#no-such-limit, but "
                          "docs/protocol/framing.md has no heading with anchor #no-such-limit", out)
            self.assertIn(f"docs/protocol/README.md:{link}: cites no-such.md, which does not exist", out)
            self.assertIn("check-citations: 6 citation(s)", out)


if __name__ == "__main__":
    unittest.main()
