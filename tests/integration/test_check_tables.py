"""scripts/check-tables: every declared counter, parameter and table column
is used by the code, and an unused one makes the check fail."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "check-tables")


def run(root):
    return subprocess.run([sys.executable, SCRIPT, root], capture_output=True, text=True, timeout=60)


class CheckTables(unittest.TestCase):
    def test_tree_is_clean(self):
        r = run(ROOT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_unused_entries_fail(self):
        with tempfile.TemporaryDirectory() as tmp:
            for top in ("protocol", "transport", "server", "client"):
                shutil.copytree(os.path.join(ROOT, top), os.path.join(tmp, top))
            counters = os.path.join(tmp, "server", "base", "counters.hpp")
            with open(counters) as f:
                text = f.read()
            text = text.replace('    X(requests, "requests answered")',
                                '    X(never_counted, "a counter nobody counts") \\\n    X(requests, "requests answered")')
            with open(counters, "w") as f:
                f.write(text)
            verbs = os.path.join(tmp, "protocol", "verbs.hpp")
            with open(verbs) as f:
                text = f.read()
            text = text.replace("    bool safe_retry;\n", "    bool safe_retry;\n    bool nobody_reads_this;\n")
            with open(verbs, "w") as f:
                f.write(text)
            r = run(tmp)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("counter 'never_counted' is counted nowhere", r.stdout)
            self.assertIn("column VerbInfo::nobody_reads_this is read nowhere", r.stdout)


if __name__ == "__main__":
    unittest.main()
