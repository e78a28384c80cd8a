from rolenrules.cli import main

main()
