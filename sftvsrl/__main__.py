import sys

from sftvsrl.cli import main

sys.exit(main())
