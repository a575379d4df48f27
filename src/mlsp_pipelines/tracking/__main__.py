import sys

from mlsp_pipelines.tracking.cli import main

sys.exit(main())
