"""Which meshes of ``pybullet_data`` (and robosuite's assets, where installed) are which robot
parts: the classes of the category-level robot sets of :mod:`tap3d.clouds.robot_parts`."""

from __future__ import annotations

__all__ = ["ROBOT_PARTS", "PART_TYPES", "PART_TYPES_LARGE", "LABELLINGS", "VARIANTS"]


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
