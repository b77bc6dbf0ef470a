"""gcpolicy: survivors of a full collection are frozen, and handed back on schedule so that cyclic garbage
from closed connections is still freed. Runs in a child process: the policy is process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_freeze_after_full_collection_and_unfreeze_on_schedule():
    code = textwrap.dedent("""
        import gc, weakref
        from tornado_phoenix import gcpolicy

        class Node:
            pass

        now = [0.0]
        uninstall = gcpolicy.install(refreeze_every=60.0, clock=lambda: now[0])
        assert gc.get_freeze_count() > 0  # start-up objects frozen

        a = Node(); b = Node(); a.peer, b.peer = b, a  # a connection's handler <-> protocol cycle
        ref = weakref.ref(a)
        gc.collect()  # a full collection: the live pair survives and is frozen
        frozen = gc.get_freeze_count()
        del a, b
        gc.collect()
        assert ref() is not None, "frozen cyclic garbage is not collected before the period"
        assert gc.get_freeze_count() >= frozen - 2

        now[0] = 61.0
        gc.collect()  # the period is over: this collection unfreezes...
        gc.collect()  # ...and the next one walks everything
        assert ref() is None, "cyclic garbage from before the freeze is freed after the period"
        assert gc.get_freeze_count() > 0  # and the survivors are frozen again
        uninstall()
        assert gc.get_freeze_count() == 0
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
