from gz_experiments.cli import main

raise SystemExit(main())
