"""Run upstream TrackEval's scripts/run_mot_challenge.py under numpy 2: restore the removed aliases
np.float/np.int (= the builtins, as numpy's own message says), nothing else changed."""

import runpy
import sys

import numpy as np
import scipy.optimize  # noqa: F401  (numpy.ma and scipy import before the aliases)

np.float, np.int = float, int
script = sys.argv.pop(1)
sys.argv[0] = script
runpy.run_path(script, run_name="__main__")
