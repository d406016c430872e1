import sys

from sr_lib.cli import main

sys.exit(main())
