"""A blind mean-opinion-score (MOS) study in the browser, as in Ledig et al. (2017) §3.3: ``mos serve`` shows every
(image, method) picture to each rater in their own random order, unnamed, after a short calibration, and stores the
1-5 scores in one SQLite file; ``mos report`` gives the MOS per method with 95 % intervals, rater screening and
significance tests. TensorFlow is needed only to make stimuli from a comparison run (:mod:`sr_lib.mos.stimuli`).
"""

from sr_lib.mos.report import mos_table, write_report
from sr_lib.mos.server import StudyServer
from sr_lib.mos.stimuli import load_folder

__all__ = ["StudyServer", "load_folder", "mos_table", "write_report"]
