import sys

from simulator.demo.run import main

sys.exit(main())
