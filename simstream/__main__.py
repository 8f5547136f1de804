from simstream.cli import main

raise SystemExit(main())
