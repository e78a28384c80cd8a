"""`python -m rolenrules.train ARGS` is `rnr train ARGS`: the form `accelerate launch -m` needs.

It hands over to the package's entry point (`python -m rolenrules train ARGS`) rather than
importing the CLI itself: the train package does not depend on how commands are parsed.
"""

import runpy
import sys

sys.argv[1:1] = ["train"]
runpy.run_module("rolenrules", run_name="__main__", alter_sys=True)
