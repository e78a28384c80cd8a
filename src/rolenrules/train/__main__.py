"""`python -m rolenrules.train ...` runs `rnr train ...`; the form `accelerate launch -m` needs."""

import sys

from rolenrules.cli import main

main(["train", *sys.argv[1:]])
