from jaxunsup.cli import main

raise SystemExit(main())
