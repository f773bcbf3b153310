"""`python -m rag.cli`: the same as the `rag` command."""

from rag.cli.main import main

raise SystemExit(main())
