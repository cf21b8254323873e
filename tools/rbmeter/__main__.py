from rbmeter.cli import main

raise SystemExit(main())
