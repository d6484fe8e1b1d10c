"""`python -m esproxy` runs the `esproxy` command line."""

from esproxy.cli import main

raise SystemExit(main())
