import sys

from obelics.cli import main

sys.exit(main())
