import sys

from usersync.cli import main

sys.exit(main())
