from meshroute.cli import main

raise SystemExit(main())
