import sys

from sr_lib.mos.cli import main

sys.exit(main())
