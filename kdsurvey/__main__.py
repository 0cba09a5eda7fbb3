from kdsurvey.cli import main

raise SystemExit(main())
