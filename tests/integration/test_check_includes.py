"""scripts/check-includes: the layer direction of docs/layout.md holds in
the tree, and a file that includes against it makes the check fail."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "check-includes")


def run(root):
    return subprocess.run([sys.executable, SCRIPT, root], capture_output=True, text=True, timeout=60)


class CheckIncludes(unittest.TestCase):
    def test_tree_is_clean(self):
        r = run(ROOT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("every include goes the allowed way", r.stdout)

    def test_violation_fails(self):
        with tempfile.TemporaryDirectory() as tmp:
            for top in ("protocol", "transport", "server", "client"):
                shutil.copytree(os.path.join(ROOT, top), os.path.join(tmp, top))
            # The Bazaar format library must never know a verb.
            bad = os.path.join(tmp, "server", "bzr", "uses_a_verb.cpp")
            with open(bad, "w") as f:
                f.write('#include "server/bzr/control.hpp"\n#include "server/verbs/dispatch.hpp"\n')
            r = run(tmp)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn('server/bzr/uses_a_verb.cpp:2: server/bzr may not include "server/verbs/dispatch.hpp"',
                          r.stdout)
            # A protocol file reaching into the server is caught too.
            with open(os.path.join(tmp, "protocol", "leak.hpp"), "w") as f:
                f.write('#include "server/base/log.hpp"\n')
            r = run(tmp)
            self.assertIn('protocol/leak.hpp:1: protocol may not include "server/base/log.hpp"', r.stdout)


if __name__ == "__main__":
    unittest.main()
