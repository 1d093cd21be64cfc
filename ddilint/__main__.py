import sys

from ddilint.cli import main

sys.exit(main())
