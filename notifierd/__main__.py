from notifierd.cli.daemon import main

raise SystemExit(main())
