"""Point clouds that are not rendered, and the one input pipeline of point-cloud tasks.

Labelled sets for classification (:mod:`~tap3d.clouds.labelled`: ScanObjectNN, ModelNet40 h5 and
normal_resampled, tap3d datasets), part-labelled sets for part segmentation
(:mod:`~tap3d.clouds.parts`: ShapeNetPart's layout, tap3d datasets with part labels), the robot
sets made from real meshes (:mod:`~tap3d.clouds.robot_parts`, :mod:`~tap3d.clouds.posed_robots`),
the restricted unpickler for the field's pickled files (:mod:`~tap3d.clouds.safe_pickle`), and
:mod:`~tap3d.clouds.pipeline`: training augmentation, test-time sampling and voting.

Below :mod:`tap3d.train` and :mod:`tap3d.evaluate`, beside :mod:`tap3d.stream`; never imports
pytorch3d.
"""

from tap3d.clouds.labelled import LabelledDataError, LabelledPoints, load_labelled
from tap3d.clouds.parts import PartDataError, PartLabelled, load_part_labelled

__all__ = ["LabelledDataError", "LabelledPoints", "load_labelled", "PartDataError",
           "PartLabelled", "load_part_labelled"]
