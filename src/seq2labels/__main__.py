from seq2labels.apps.cli import main

raise SystemExit(main())
