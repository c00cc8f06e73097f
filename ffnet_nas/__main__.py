import sys

from ffnet_nas.cli import main

sys.exit(main())
