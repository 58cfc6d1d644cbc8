"""A category-level labelled point-cloud set from real meshes: the links of the URDF robots in
``pybullet_data``, labelled by robot, scanned as ScanObjectNN's hardest variant perturbs objects.

Why: an instance-recognition set (one mesh per class) is solved by random features; here every
class is several different meshes (the links of one robot: a chassis, a wheel, a motor, ...),
and the test clouds come from meshes no training cloud was sampled from, so a classifier has to
learn what a robot's parts have in common (its design language), not memorize shapes.

Classes (:data:`ROBOT_PARTS`, label order): 10 robots, 4 to 12 link meshes each. Near-duplicate
meshes (left/right or mirrored copies, low-resolution or convex-decomposition versions) are
either left out or grouped into one *part*, and a part's meshes always share a split. Per class,
``round(test_share * parts)`` parts (at least one) are drawn, seeded, for the test split.

Each cloud (:func:`scan`), a PB_T50_RS-like perturbation (ScanObjectNN, Uy et al., ICCV 2019:
bounding boxes translated, rotated and scaled, background kept). Exactly:

1. the mesh (z-up, turned y-up) is centred on its bounding-box centre and scaled to unit radius
   (so a robot's units, millimetres or metres, do not give its class away);
2. 8192 area-weighted surface samples (trimesh);
3. rotation about the up axis by U[-pi, pi) and scaling per axis by U[0.8, 1.2];
4. occlusion: the union of what one or two cameras see (open3d's hidden point removal), each
   at distance 3 (the object's radius is about 1), azimuth U[0, 2 pi), elevation U[10, 60]
   degrees above the horizon: the underside and the far sides go missing, as in a scan;
5. translation: the object's axis-aligned box is shifted along each horizontal axis by
   U[-shift, shift] times its size (``shift`` 0.25; ScanObjectNN's T50 shifts by up to 50%),
   and only the object points inside the shifted box are kept;
6. background: a share U[0.05, 0.25] of the ``points`` (2048) are floor points, uniform over
   the shifted box's footprint at the object's lowest height with 0.01 vertical noise, and 1%
   are uniform clutter in the box;
7. the object points (drawn without replacement when enough are left, else with) get Gaussian
   jitter of standard deviation 0.005; the cloud is shuffled and centred on the box centre.

The result is written in ScanObjectNN's layout (:func:`write_robot_parts`), read by
:func:`tap3d.clouds.labelled.load_labelled` (``shape_names.txt`` gives the class names).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["ROBOT_PARTS", "PART_TYPES", "PART_TYPES_LARGE", "LABELLINGS", "VARIANTS",
           "robosuite_assets", "mesh_path", "RobotParts", "robot_part_split", "scan", "robot_part_clouds",
           "write_robot_parts"]

#: robot (class) -> parts; a part is one mesh, or near-duplicate meshes that share a split.
#: Paths are relative to ``pybullet_data``. OBJ/STL only (no COLLADA reader needed).
ROBOT_PARTS: dict[str, list[tuple[str, ...]]] = {
    "bicycle": [(f"bicycle/files/{name}.stl",) for name in
                ("all_pedal_parts", "bike_rack", "frame_scaled", "handlebar_scaled",
                 "wheel_axels", "wheel_scaled")],
    "differential": [(f"differential/diff_{name}.stl",) for name in
                     ("arm", "carrier", "carrier_cover", "leftshaft", "motor_cover", "pinion",
                      "ring", "side", "spider", "spider_shaft", "stand")],
    "franka_panda": [(f"franka_panda/meshes/collision/{name}.obj",) for name in
                     ("link0", "link1", "link2", "link3", "link4", "link5", "link6", "link7",
                      "hand", "finger")],
    "husky": [(f"husky/meshes/{name}.stl",) for name in
              ("base_link", "bumper", "top_plate", "user_rail", "wheel")],
    "kuka_iiwa": [(f"kuka_iiwa/meshes/link_{i}.obj",) for i in range(8)]
    + [("kuka_iiwa/meshes/finger_base_left.stl",), ("kuka_iiwa/meshes/finger_tip_left.stl",)],
    "laikago": [("laikago/chassis.obj",), ("laikago/hip_motor.obj",),
                ("laikago/lower_leg3.obj",), ("laikago/upper_leg_left.obj",)],
    "microtaur": [("quadruped/microtaur/channel.stl", "quadruped/microtaur/channel_4inch.stl",
                   "quadruped/microtaur/channel_6inch.stl")]
    + [(f"quadruped/microtaur/{name}.stl",) for name in
       ("d435i", "fr12_h101", "fr13_s102", "plate", "xavier", "xm430w210")]
    + [("quadruped/tmotor3.obj",)],
    "racecar": [("racecar/meshes/chassis.STL",), ("racecar/meshes/chassis_differential.STL",),
                ("racecar/meshes/hokuyo.obj",), ("racecar/meshes/left_front_wheel.obj",),
                ("racecar/meshes/left_steering_hinge.STL",)],
    "unitree": [(f"a1/meshes/{name}.obj", f"aliengo/meshes/{name}.obj") for name in
                ("calf", "hip", "thigh", "trunk")],
    "xarm": [(f"xarm/xarm_description/meshes/xarm6/visual/{name}.stl",) for name in
             ("base", "link1", "link2", "link3", "link4", "link5", "link6")]
    + [(f"xarm/xarm_gripper/meshes/{name}.STL",) for name in
       ("base_link", "left_finger", "left_inner_knuckle", "left_outer_knuckle")],
}


_UNITREE = ("a1", "aliengo")  # two Unitree quadrupeds with parts of the same design

#: part type (class) -> parts of many robots: the semantic categories of the same link meshes.
PART_TYPES: dict[str, list[tuple[str, ...]]] = {
    "arm_link": [(f"kuka_iiwa/meshes/link_{i}.obj",) for i in range(8)]
    + [(f"franka_panda/meshes/collision/link{i}.obj",) for i in range(8)]
    + [(f"xarm/xarm_description/meshes/xarm6/visual/{name}.stl",) for name in
       ("base", "link1", "link2", "link3", "link4", "link5", "link6")],
    "chassis": [tuple(f"{robot}/meshes/trunk.obj" for robot in _UNITREE),
                ("laikago/chassis.obj",), ("mini_cheetah/meshes/mini_body.obj",),
                ("husky/meshes/base_link.stl",), ("husky/meshes/top_plate.stl",),
                ("racecar/meshes/chassis.STL", "racecar/meshes/chassis_differential.STL"),
                ("quadruped/microtaur/plate.stl",)],
    "gripper": [("franka_panda/meshes/collision/hand.obj",),
                ("franka_panda/meshes/collision/finger.obj",),
                ("kuka_iiwa/meshes/finger_base_left.stl",),
                ("kuka_iiwa/meshes/finger_tip_left.stl",)]
    + [(f"xarm/xarm_gripper/meshes/{name}.STL",) for name in
       ("base_link", "left_finger", "left_inner_knuckle", "left_outer_knuckle")]
    + [(f"gripper/meshes/{name}.stl",) for name in
       ("WSG50_110", "GUIDE_WSG50_110", "WSG-FMF", "l_gripper_tip_scaled")]
    + [("l_finger.stl",), ("l_finger_tip.stl",)],
    "leg_link": [tuple(f"{robot}/meshes/{name}.obj" for robot in _UNITREE)
                 for name in ("calf", "thigh")]
    + [("laikago/lower_leg3.obj",), ("laikago/upper_leg_left.obj",),
       ("mini_cheetah/meshes/mini_lower_link.obj",),
       ("mini_cheetah/meshes/mini_upper_link.obj",)],
    "round_part": [("racecar/meshes/left_front_wheel.obj",), ("husky/meshes/wheel.stl",),
                   ("bicycle/files/wheel_scaled.stl",), ("quadruped/tmotor3.obj",),
                   ("laikago/hip_motor.obj",)]
    + [(f"differential/diff_{name}.stl",) for name in ("ring", "pinion", "side", "spider")],
}

#: ScanObjectNN variants the scans can imitate (:func:`scan`).
VARIANTS = ("pb_t50_rs", "obj_only")

def _rs(*names: str) -> tuple[str, ...]:
    """A part of robosuite's meshes (paths under ``robosuite/models/assets``)."""
    return tuple(f"robosuite:{name}" for name in names)


_RS_UR5E = ("shoulder", "upperarm", "forearm", "wrist1", "wrist2", "wrist3")
_RS_KINOVA3 = ("shoulder_link", "half_arm_1_link", "half_arm_2_link", "forearm_link",
               "spherical_wrist_1_link", "spherical_wrist_2_link")
_RS_JACO = ("shoulder", "arm_half_1", "arm_half_2", "forearm", "wrist_spherical_1",
            "wrist_spherical_2")
_RS_BAXTER = {"upper_shoulder": "S0", "lower_shoulder": "S1", "upper_elbow": "E0",
              "lower_elbow": "E1", "upper_forearm": "W0", "lower_forearm": "W1", "wrist": "W2"}
_RS_GRIPPERS = "grippers/meshes"

#: part type (class) -> parts of pybullet_data's robots and of robosuite's (a ``robosuite:``
#: path is under ``robosuite/models/assets``; installed with ``pip install --no-deps
#: robosuite==1.5.2``, whose meshes need none of its dependencies). 8 classes, 148 parts from 25
#: robots and grippers: the same link in two packages (KUKA iiwa, Franka Panda) and mirrored
#: copies (left/right, front/rear) are one part.
PART_TYPES_LARGE: dict[str, list[tuple[str, ...]]] = {
    "arm_link": [(f"kuka_iiwa/meshes/link_{i}.obj", f"robosuite:robots/iiwa/meshes/link_{i}.stl")
                 for i in range(1, 8)]
    + [(f"franka_panda/meshes/collision/link{i}.obj", f"robosuite:robots/panda/meshes/link{i}.stl")
       for i in range(1, 8)]
    + [(f"xarm/xarm_description/meshes/xarm6/visual/link{i}.stl",) for i in range(1, 7)]
    + [_rs(f"robots/xarm7/meshes/link{i}.stl") for i in range(1, 8)]
    + [_rs(f"robots/ur5e/meshes/{name}.stl") for name in _RS_UR5E]
    + [_rs(f"robots/kinova3/meshes/{name}.stl") for name in _RS_KINOVA3]
    + [_rs(f"robots/jaco/meshes/{name}.stl") for name in _RS_JACO]
    + [_rs(f"robots/sawyer/obj_meshes/l{i}.obj") for i in range(7)]
    + [_rs(f"robots/baxter/obj_meshes/{folder}/{name}.obj") for folder, name in _RS_BAXTER.items()]
    + [_rs(f"robots/tiago/meshes/arm/{name}.stl") for name in
       ("arm_1", "arm_2", "arm_3", "arm_4", "arm_5-wrist-2017", "arm_6-wrist-2017")]
    + [_rs(f"robots/spot_arm/meshes/arm_link_{name}.obj") for name in ("sh0", "hr0", "el0", "wr0")]
    + [_rs(*(f"robots/gr1/meshes/{side}_{name}.STL" for side in "lr")) for name in
       ("upper_arm_pitch", "upper_arm_roll", "upper_arm_yaw", "lower_arm_pitch")],
    "arm_base": [("kuka_iiwa/meshes/link_0.obj", "robosuite:robots/iiwa/meshes/link_0.stl"),
                 ("franka_panda/meshes/collision/link0.obj",
                  "robosuite:robots/panda/meshes/link0.stl"),
                 ("xarm/xarm_description/meshes/xarm6/visual/base.stl",)]
    + [_rs(f"robots/{name}") for name in
       ("xarm7/meshes/link_base.stl", "ur5e/meshes/base.stl", "kinova3/meshes/base_link.stl",
        "jaco/meshes/base.stl", "sawyer/obj_meshes/base.obj")],
    "finger": [("franka_panda/meshes/collision/finger.obj",
                f"robosuite:{_RS_GRIPPERS}/panda_gripper/finger.stl"),
               ("kuka_iiwa/meshes/finger_tip_left.stl",),
               ("xarm/xarm_gripper/meshes/left_finger.STL",),
               ("l_finger.stl",), ("l_finger_tip.stl",),
               ("gripper/meshes/l_gripper_tip_scaled.stl",)]
    + [_rs(f"{_RS_GRIPPERS}/{name}") for name in
       ("robotiq_85_gripper/robotiq_arg2f_85_inner_finger.stl",
        "robotiq_85_gripper/robotiq_arg2f_85_outer_finger.stl",
        "robotiq_140_gripper/robotiq_arg2f_140_inner_finger.stl",
        "robotiq_140_gripper/robotiq_arg2f_140_outer_finger.stl",
        "robotiq_s_gripper/link_1.stl", "robotiq_s_gripper/link_2.stl",
        "robotiq_s_gripper/link_3.stl",
        "jaco_three_finger_gripper/finger_distal.stl",
        "jaco_three_finger_gripper/finger_proximal.stl",
        "rethink_gripper/half_round_tip.stl", "rethink_gripper/standard_narrow.stl",
        "xarm7_gripper/left_finger.stl", "bd_gripper/left_finger.obj",
        "panda_gripper/finger_longer.stl")]
    + [_rs("robots/tiago/meshes/grippers/gripper_finger_link.stl")],
    "knuckle": [("xarm/xarm_gripper/meshes/left_inner_knuckle.STL",),
                ("xarm/xarm_gripper/meshes/left_outer_knuckle.STL",),
                ("kuka_iiwa/meshes/finger_base_left.stl",)]
    + [_rs(f"{_RS_GRIPPERS}/{name}") for name in
       ("robotiq_85_gripper/robotiq_arg2f_85_inner_knuckle.stl",
        "robotiq_85_gripper/robotiq_arg2f_85_outer_knuckle.stl",
        "robotiq_140_gripper/robotiq_arg2f_140_inner_knuckle.stl",
        "robotiq_140_gripper/robotiq_arg2f_140_outer_knuckle.stl",
        "xarm7_gripper/left_inner_knuckle.stl", "xarm7_gripper/left_outer_knuckle.stl",
        "bd_gripper/left_hinge.obj")],
    "gripper_body": [("franka_panda/meshes/collision/hand.obj",
                      f"robosuite:{_RS_GRIPPERS}/panda_gripper/hand.stl"),
                     ("xarm/xarm_gripper/meshes/base_link.STL",)]
    + [(f"gripper/meshes/{name}.stl",) for name in ("WSG50_110", "GUIDE_WSG50_110", "WSG-FMF")]
    + [_rs(f"{_RS_GRIPPERS}/{name}") for name in
       ("robotiq_85_gripper/robotiq_arg2f_85_base_link.stl",
        "robotiq_140_gripper/robotiq_arg2f_base_link.stl", "robotiq_s_gripper/palm.stl",
        "jaco_three_finger_gripper/hand_3finger.stl", "rethink_gripper/electric_gripper_base.stl",
        "xarm7_gripper/base_link.stl", "bd_gripper/middle_jaw.obj")]
    + [_rs("robots/tiago/meshes/grippers/gripper_link.stl"),
       _rs("robots/tiago/meshes/grippers/palm.stl")],
    "leg_link": [tuple(f"{robot}/meshes/{name}.obj" for robot in _UNITREE)
                 for name in ("calf", "thigh")]
    + [("laikago/lower_leg3.obj",), ("laikago/upper_leg_left.obj",),
       ("mini_cheetah/meshes/mini_lower_link.obj",),
       ("mini_cheetah/meshes/mini_upper_link.obj",)]
    + [_rs(*(f"robots/spot/meshes/{end}_{side}_lower_leg.obj" for end in ("front", "rear")
             for side in ("left", "right"))),
       _rs(*(f"robots/spot/meshes/{end}_{side}_hip.obj" for end in ("front", "rear")
             for side in ("left", "right"))),
       _rs("robots/spot/meshes/left_upper_leg_collision.obj",
           "robots/spot/meshes/right_upper_leg_collision.obj")]
    + [_rs(*(f"robots/gr1/meshes/{side}_{name}.STL" for side in "lr")) for name in
       ("thigh_pitch", "thigh_roll", "thigh_yaw", "shank_pitch", "foot_pitch")],
    "round_part": [("racecar/meshes/left_front_wheel.obj",), ("husky/meshes/wheel.stl",),
                   ("bicycle/files/wheel_scaled.stl",), ("quadruped/tmotor3.obj",),
                   ("laikago/hip_motor.obj",)]
    + [(f"differential/diff_{name}.stl",) for name in ("ring", "pinion", "side", "spider")]
    + [_rs(f"robots/tiago/meshes/wheels/{name}.stl") for name in ("wheel", "caster_1")]
    + [_rs(f"robots/jaco/meshes/{name}.stl") for name in ("ring_big", "ring_small")],
    "chassis": [tuple(f"{robot}/meshes/trunk.obj" for robot in _UNITREE),
                ("laikago/chassis.obj",), ("mini_cheetah/meshes/mini_body.obj",),
                ("husky/meshes/base_link.stl",), ("husky/meshes/top_plate.stl",),
                ("racecar/meshes/chassis.STL", "racecar/meshes/chassis_differential.STL"),
                ("quadruped/microtaur/plate.stl",)]
    + [_rs(f"robots/{name}") for name in
       ("spot/meshes/body_collision.obj", "tiago/meshes/base/base.stl", "gr1/meshes/torso.STL",
        "baxter/obj_meshes/torso/base_link.obj")],
}

#: labellings of the link meshes: ``"part"`` (what a link is, 5 classes), ``"robot"`` (whose
#: link it is, 10 classes) and ``"part_large"`` (what a link is, 8 classes, with robosuite's)
LABELLINGS = {"part": PART_TYPES, "robot": ROBOT_PARTS, "part_large": PART_TYPES_LARGE}

@dataclass
class RobotParts:
    """A category-level set in memory.

    Attributes:
        classes: robot names; label ``i`` is ``classes[i]``.
        train_points, test_points: ``(N, points, 3)`` float32, y-up, unnormalized (about unit
            radius, centred on the scan box).
        train_labels, test_labels: ``(N,)`` int64.
        train_meshes, test_meshes: ``(N,)`` the mesh (path relative to ``pybullet_data``) each
            cloud was sampled from; the two sets of meshes are disjoint.
        variant: the ScanObjectNN variant the scans imitate (:data:`VARIANTS`).
    """

    classes: list[str]
    train_points: np.ndarray
    train_labels: np.ndarray
    train_meshes: np.ndarray
    test_points: np.ndarray
    test_labels: np.ndarray
    test_meshes: np.ndarray
    variant: str = "pb_t50_rs"


def robot_part_split(labels: str = "part", test_share: float = 0.3, seed: int = 0
                     ) -> dict[str, tuple[list[tuple[str, ...]], list[tuple[str, ...]]]]:
    """Class -> (training parts, test parts) of a labelling (:data:`LABELLINGS`): per class
    ``round(test_share * parts)`` parts (at least one, at most all but one) drawn with
    ``seed``.

    Raises:
        ValueError: an unknown labelling.
    """
    if labels not in LABELLINGS:
        raise ValueError(f"unknown labelling {labels!r}; choose one of {', '.join(LABELLINGS)}")
    rng = np.random.default_rng(seed)
    split = {}
    for robot, parts in LABELLINGS[labels].items():
        count = min(max(int(round(test_share * len(parts))), 1), len(parts) - 1)
        test = set(rng.choice(len(parts), count, replace=False).tolist())
        split[robot] = ([p for i, p in enumerate(parts) if i not in test],
                        [p for i, p in enumerate(parts) if i in test])
    return split


def robosuite_assets() -> str:
    """robosuite's ``models/assets`` folder, found without importing robosuite (its meshes need
    none of its dependencies).

    Raises:
        FileNotFoundError: robosuite is not installed (``pip install --no-deps
            robosuite==1.5.2``; ``make install`` does it).
    """
    import importlib.util

    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the part_large labelling needs robosuite's meshes: pip install "
                                "--no-deps robosuite==1.5.2")
    return os.path.join(spec.submodule_search_locations[0], "models", "assets")


def mesh_path(root: str, rel: str) -> str:
    """The file of a part's mesh: ``rel`` under ``root`` (pybullet_data), or for a
    ``robosuite:`` path under :func:`robosuite_assets`."""
    if rel.startswith("robosuite:"):
        return os.path.join(robosuite_assets(), rel.split(":", 1)[1])
    return os.path.join(root, rel)


def _load_unit(root: str, rel: str):
    """A ``pybullet_data`` (or robosuite) mesh turned y-up, centred on its box centre, unit
    radius."""
    import trimesh

    path = mesh_path(root, rel)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: a robot-part mesh is missing (is {root} the "
                                "pybullet_data folder?)")
    mesh = trimesh.load(path, force="mesh")
    vertices = mesh.vertices[:, [0, 2, 1]] * [1.0, 1.0, -1.0]
    vertices = vertices - (vertices.min(0) + vertices.max(0)) / 2
    return trimesh.Trimesh(vertices / np.linalg.norm(vertices, axis=1).max(), mesh.faces,
                           process=False)


def _visible(xyz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``xyz`` seen from one or two random cameras (hidden point removal)."""
    import open3d as o3d

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    seen: set[int] = set()
    for _ in range(int(rng.integers(1, 3))):
        azimuth, elevation = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(10, 60))
        camera = 3.0 * np.array([np.cos(elevation) * np.cos(azimuth), np.sin(elevation),
                                 np.cos(elevation) * np.sin(azimuth)])
        _, index = cloud.hidden_point_removal(camera, 300.0)
        seen.update(index)
    return np.fromiter(sorted(seen), dtype=np.int64)


def scan(mesh, points: int, rng: np.random.Generator, shift: float = 0.25,
         background: bool = True) -> np.ndarray:
    """One PB_T50_RS-like cloud of a unit-radius y-up trimesh (module docstring, steps 2-7).

    Args:
        mesh: a ``trimesh.Trimesh`` (unit radius, y-up).
        points: points in the cloud (2048 in ScanObjectNN).
        rng: all the randomness.
        shift: the box's horizontal translation, a fraction of its size.
        background: False for ScanObjectNN's OBJ_ONLY: no floor, no clutter, no box shift
            (steps 5 and 6 left out; the views, rotation, scaling and jitter stay).

    Returns:
        ``(points, 3)`` float32.
    """
    import trimesh

    xyz, _ = trimesh.sample.sample_surface(mesh, 8192, seed=int(rng.integers(2**31)))
    angle = rng.uniform(-np.pi, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    xyz = xyz @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]]).T * rng.uniform(0.8, 1.2, 3)
    low, high = xyz.min(0), xyz.max(0)
    offset = np.zeros(3)
    offset[[0, 2]] = rng.uniform(-shift, shift, 2) * (high - low)[[0, 2]] * background
    low, high = low + offset, high + offset
    xyz = xyz[_visible(xyz, rng)]
    xyz = xyz[np.all((xyz >= low) & (xyz <= high), axis=1)]
    floor_count = int(round(rng.uniform(0.05, 0.25) * points)) if background else 0
    clutter_count = int(round(0.01 * points)) if background else 0
    count = points - floor_count - clutter_count
    if len(xyz) == 0:  # the box missed what the cameras saw: background only
        xyz = np.zeros((1, 3)) + (low + high) / 2
    pick = rng.choice(len(xyz), count, replace=len(xyz) < count)
    obj = xyz[pick] + rng.normal(0, 0.005, (count, 3))
    floor = rng.uniform(low, high, (floor_count, 3))
    floor[:, 1] = low[1] + rng.normal(0, 0.01, floor_count)
    clutter = rng.uniform(low, high, (clutter_count, 3))
    cloud = np.concatenate([obj, floor, clutter])[rng.permutation(points)]
    return (cloud - (low + high) / 2).astype(np.float32)


def robot_part_clouds(root: str | None = None, labels: str = "part", train_per_class: int = 100,
                      test_per_class: int = 16, points: int = 2048, test_share: float = 0.3,
                      shift: float = 0.25, seed: int = 0,
                      variant: str = "pb_t50_rs") -> RobotParts:
    """The category-level set: per robot, ``train_per_class`` clouds dealt round-robin over
    its training parts (and a part's meshes) and ``test_per_class`` over its test parts.

    Args:
        root: the ``pybullet_data`` folder (default: the installed package's).
        labels: ``"part"`` or ``"robot"`` (:data:`LABELLINGS`).
        train_per_class, test_per_class: clouds per class and split.
        points: points per cloud.
        test_share, seed: the part split (:func:`robot_part_split`); ``seed`` also seeds the
            scans (the test scans with a different stream than the training ones).
        shift: :func:`scan`'s box translation.
        variant: ``pb_t50_rs`` (background kept) or ``obj_only`` (:func:`scan` without
            background).

    Returns:
        A :class:`RobotParts`.

    Raises:
        ImportError: no ``root`` and ``pybullet_data`` is not installed (``pip install
            pybullet``).
        ValueError: an unknown labelling or variant.
        FileNotFoundError: a mesh is missing under ``root`` (names the file).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if root is None:
        import pybullet_data

        root = pybullet_data.getDataPath()
    split = robot_part_split(labels, test_share, seed)
    out = {}
    for index, name in enumerate(("train", "test")):
        rng = np.random.default_rng([seed, index])
        per_class = (train_per_class, test_per_class)[index]
        clouds, labels, meshes = [], [], []
        for label, robot in enumerate(split):
            parts = split[robot][index]
            loaded = {rel: _load_unit(root, rel) for part in parts for rel in part}
            for k in range(per_class):
                part = parts[k % len(parts)]
                rel = part[(k // len(parts)) % len(part)]
                clouds.append(scan(loaded[rel], points, rng, shift, variant == "pb_t50_rs"))
                labels.append(label)
                meshes.append(rel)
        out[name] = (np.stack(clouds), np.array(labels, dtype=np.int64), np.array(meshes))
    return RobotParts(list(split), *out["train"], *out["test"], variant)


def write_robot_parts(folder: str | os.PathLike, parts: RobotParts) -> str:
    """Write ScanObjectNN's files of ``parts.variant``: for ``pb_t50_rs``
    ``folder/main_split/{training,test}_objectdataset_augmentedrot_scale75.h5``, for
    ``obj_only`` ``folder/main_split_nobg/{training,test}_objectdataset.h5`` (``data``
    ``(N, points, 3)`` float32, ``label`` ``(N,)`` int8, ``mesh`` ``(N,)`` the source mesh
    paths) and ``folder/shape_names.txt`` (one class a line). Returns ``folder``."""
    import h5py

    from tap3d.clouds.labelled import SCANOBJECTNN_VARIANTS

    folder = os.fspath(folder)
    split_folder, stem = SCANOBJECTNN_VARIANTS[parts.variant]
    os.makedirs(os.path.join(folder, split_folder), exist_ok=True)
    for split, x, y, meshes in (("training", parts.train_points, parts.train_labels,
                                 parts.train_meshes),
                                ("test", parts.test_points, parts.test_labels,
                                 parts.test_meshes)):
        with h5py.File(os.path.join(folder, split_folder, f"{split}_{stem}.h5"), "w") as f:
            f["data"] = x.astype(np.float32)
            f["label"] = y.astype(np.int8)
            f["mesh"] = meshes.astype("S")
    with open(os.path.join(folder, "shape_names.txt"), "w") as f:
        f.write("\n".join(parts.classes) + "\n")
    return folder
