from tornado_phoenix.cli import main

raise SystemExit(main())
