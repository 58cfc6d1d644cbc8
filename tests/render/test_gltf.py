"""glTF rendered as its viewers show it: one GLB per feature, made from pybullet_data's textured
duck, renders like a reference mesh that bakes the feature in (mask disagreement <= 1% of the
covered pixels, mean |rgb| <= 3/255 where both cover); what cannot be decoded is named."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from tap3d.render.basecolor import linear_to_srgb
from tap3d.render.cameras import make_cameras, make_layout
from tap3d.render.meshes import MeshError, load_mesh
from tap3d.render.rasterize import make_rasterizer
from tap3d.render.shade import ViewRenderer

from gltf_data import (UBYTE, Duck, Glb, png, premultiplied, write_obj, write_ply)

S = 96
FACTOR = (0.8, 0.45, 0.25, 1.0)


@pytest.fixture(scope="module")
def duck(pybullet_root):
    return Duck(pybullet_root)


def _textured(glb: Glb, duck: Duck, **material) -> int:
    texture = glb.texture(glb.image(png(duck.image), "image/png", "duckCM"))
    return glb.material(texture=texture, **material)


def _duck_mesh(glb: Glb, duck: Duck, material: int, uv=None, **attributes) -> int:
    uv = duck.gltf_uvs if uv is None else uv
    return glb.mesh([{"attributes": {"POSITION": glb.accessor(duck.verts, bounds=True),
                                     "TEXCOORD_0": glb.accessor(uv), **attributes},
                      "indices": glb.accessor(duck.faces.reshape(-1), 5125),
                      "material": material}])


def _inverse_transform(uv: np.ndarray, offset, rotation, scale) -> np.ndarray:
    """UVs that ``KHR_texture_transform`` (offset x rotation x scale) maps to ``uv``."""
    c, s = math.cos(rotation), math.sin(rotation)
    matrix = np.array([[1, 0, offset[0]], [0, 1, offset[1]], [0, 0, 1]]) @ \
        np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) @ np.diag([scale[0], scale[1], 1.0])
    inverse = np.linalg.inv(matrix)
    return (uv @ inverse[:2, :2].T + inverse[:2, 2]).astype(np.float32)


def case_textured(glb, duck, tmp):
    _duck_mesh(glb, duck, _textured(glb, duck))
    glb.node(mesh=0)
    return write_obj(tmp / "ref.obj", duck.verts, duck.faces, duck.uvs, duck.image)


def case_base_color_factor(glb, duck, tmp):
    _duck_mesh(glb, duck, _textured(glb, duck, factor=FACTOR))
    glb.node(mesh=0)
    return write_obj(tmp / "ref.obj", duck.verts, duck.faces, duck.uvs,
                     premultiplied(duck.image, FACTOR))


def case_factor_only(glb, duck, tmp):
    glb.mesh([{"attributes": {"POSITION": glb.accessor(duck.verts, bounds=True)},
               "indices": glb.accessor(duck.faces.reshape(-1), 5125),
               "material": glb.material(factor=FACTOR)}])
    glb.node(mesh=0)
    return write_obj(tmp / "ref.obj", duck.verts, duck.faces, kd=linear_to_srgb(FACTOR[:3]))


def _vertex_colors(duck: Duck) -> np.ndarray:
    """A smooth linear colour field over the duck, quantized to 8 bits as the file stores it."""
    span = np.ptp(duck.verts, 0)
    unit = (duck.verts - duck.verts.min(0)) / span
    return np.round(np.clip(0.15 + 0.8 * unit[:, [0, 1, 2]], 0, 1) * 255) / 255


def case_color_0(glb, duck, tmp):
    colors = _vertex_colors(duck)
    glb.mesh([{"attributes": {"POSITION": glb.accessor(duck.verts, bounds=True),
                              "COLOR_0": glb.accessor(colors * 255, UBYTE, normalized=True)},
               "indices": glb.accessor(duck.faces.reshape(-1), 5125),
               "material": glb.material(factor=FACTOR)}])
    glb.node(mesh=0)
    return write_ply(tmp / "ref.ply", duck.verts, duck.faces,
                     linear_to_srgb(colors * np.asarray(FACTOR[:3])))


def case_tex_coord_1(glb, duck, tmp):
    material = _textured(glb, duck, tex_coord=1)
    _duck_mesh(glb, duck, material, uv=np.zeros_like(duck.uvs),
               TEXCOORD_1=glb.accessor(duck.gltf_uvs))
    glb.node(mesh=0)
    return write_obj(tmp / "ref.obj", duck.verts, duck.faces, duck.uvs, duck.image)


def case_texture_transform(glb, duck, tmp):
    transform = {"offset": [0.2, -0.1], "rotation": 0.3, "scale": [2.0, 0.5]}
    material = _textured(glb, duck, texture_extensions={"KHR_texture_transform": transform})
    _duck_mesh(glb, duck, material, uv=_inverse_transform(
        duck.gltf_uvs, transform["offset"], transform["rotation"], transform["scale"]))
    glb.node(mesh=0)
    glb.used = ["KHR_texture_transform"]
    return write_obj(tmp / "ref.obj", duck.verts, duck.faces, duck.uvs, duck.image)


def case_specular_glossiness(glb, duck, tmp):
    texture = glb.texture(glb.image(png(duck.image), "image/png"))
    material = glb.material(factor=(0.1, 0.1, 0.1, 1.0), extensions={
        "KHR_materials_pbrSpecularGlossiness": {"diffuseTexture": {"index": texture},
                                                "diffuseFactor": list(FACTOR)}})
    _duck_mesh(glb, duck, material)
    glb.node(mesh=0)
    glb.used = ["KHR_materials_pbrSpecularGlossiness"]
    return write_obj(tmp / "ref.obj", duck.verts, duck.faces, duck.uvs,
                     premultiplied(duck.image, FACTOR))


def case_primitives_and_materials(glb, duck, tmp):
    """Two primitives sharing the vertices: the left half textured, the right half a colour."""
    left = duck.verts[duck.faces].mean(1)[:, 0] < np.median(duck.verts[:, 0])
    position = glb.accessor(duck.verts, bounds=True)
    uv = glb.accessor(duck.gltf_uvs)
    textured, plain = _textured(glb, duck), glb.material(factor=FACTOR)
    glb.mesh([{"attributes": {"POSITION": position, "TEXCOORD_0": uv},
               "indices": glb.accessor(duck.faces[mask].reshape(-1), 5125), "material": m}
              for mask, m in ((left, textured), (~left, plain))])
    glb.node(mesh=0)
    return write_obj(tmp / "ref.obj", duck.verts, duck.faces, duck.uvs, face_groups=[
        (left, (1.0, 1.0, 1.0), duck.image), (~left, linear_to_srgb(FACTOR[:3]), None)])


def _rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def case_scene_graph(glb, duck, tmp):
    """One mesh, two instances: under a parent given as a matrix, a child with its own
    translation, rotation and scale; and a second node with a translation."""
    _duck_mesh(glb, duck, _textured(glb, duck))
    half = math.radians(30) / 2
    child = glb.node(root=False, mesh=0, translation=[0.4, 0.0, 0.0],
                     rotation=[0.0, math.sin(half), 0.0, math.cos(half)], scale=[0.5, 0.5, 0.5])
    parent_matrix = np.eye(4)
    parent_matrix[:3, 3] = [0.0, 0.2, -0.1]
    glb.node(children=[child], matrix=parent_matrix.T.reshape(-1).tolist())
    glb.node(mesh=0, translation=[-0.8, 0.0, 0.0])
    first = (duck.verts * 0.5) @ _rotation_y(math.radians(30)).T + [0.4, 0.2, -0.1]
    second = duck.verts + [-0.8, 0.0, 0.0]
    verts = np.concatenate([first, second])
    faces = np.concatenate([duck.faces, duck.faces + len(duck.verts)])
    return write_obj(tmp / "ref.obj", verts, faces, np.concatenate([duck.uvs, duck.uvs]),
                     duck.image)


def case_negative_scale(glb, duck, tmp):
    _duck_mesh(glb, duck, _textured(glb, duck))
    glb.node(mesh=0, scale=[-1.0, 1.0, 1.0])
    mirrored = duck.verts * [-1.0, 1.0, 1.0]
    return write_obj(tmp / "ref.obj", mirrored, duck.faces[:, [0, 2, 1]], duck.uvs, duck.image)


def case_draco(glb, duck, tmp):
    import DracoPy

    data = DracoPy.encode(duck.verts, duck.faces.astype(np.uint32), quantization_bits=16,
                          tex_coord=duck.gltf_uvs.astype(np.float64), preserve_order=True,
                          tex_coord_quantization_bits=16)
    ids = {a["attribute_type"]: a["unique_id"] for a in DracoPy.decode(data).attributes}
    material = _textured(glb, duck)
    position = glb.accessor(duck.verts, bounds=True)
    glb.gltf.accessors[position].bufferView = None  # the data is in the Draco stream alone
    uv = glb.accessor(duck.gltf_uvs)
    glb.gltf.accessors[uv].bufferView = None
    glb.mesh([{"attributes": {"POSITION": position, "TEXCOORD_0": uv}, "material": material,
               "extensions": {"KHR_draco_mesh_compression": {
                   "bufferView": glb.view(data),
                   "attributes": {"POSITION": ids[0], "TEXCOORD_0": ids[3]}}}}])
    glb.node(mesh=0)
    glb.required = ["KHR_draco_mesh_compression"]
    return write_obj(tmp / "ref.obj", duck.verts, duck.faces, duck.uvs, duck.image)


def case_webp(glb, duck, tmp):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(duck.image).save(buffer, format="WEBP", lossless=True)
    texture = glb.texture(None, extensions={"EXT_texture_webp": {
        "source": glb.image(buffer.getvalue(), "image/webp")}})
    _duck_mesh(glb, duck, glb.material(texture=texture))
    glb.node(mesh=0)
    glb.required = ["EXT_texture_webp"]
    return write_obj(tmp / "ref.obj", duck.verts, duck.faces, duck.uvs, duck.image)


CASES = {name[5:]: case for name, case in globals().items() if name.startswith("case_")}


def _render(path: str):
    mesh = load_mesh(path)
    cameras = make_cameras(make_layout("clip2point", 10, 2.0), 60.0)
    return ViewRenderer(make_rasterizer("embree", S))(mesh, cameras), mesh


def _write(tmp_path, duck, case) -> tuple[str, str]:
    glb = Glb()
    glb.used, glb.required = [], []
    reference = case(glb, duck, tmp_path)
    return glb.save(str(tmp_path / "case.glb"), glb.used, glb.required), str(reference)


@pytest.mark.parametrize("name", CASES)
def test_each_feature_renders_like_its_reference(tmp_path, duck, name):
    glb, reference = _write(tmp_path, duck, CASES[name])
    (ours, mesh), (theirs, _) = _render(glb), _render(reference)
    both = ours.mask & theirs.mask
    disagreement = (ours.mask != theirs.mask).sum() / theirs.mask.sum()
    error = np.abs(ours.rgb.astype(int) - theirs.rgb.astype(int))[both].mean()
    assert disagreement <= 0.01, (name, disagreement)
    assert error <= 3.0, (name, error)
    assert not mesh.warnings, mesh.warnings


def test_the_reference_comparison_can_fail(tmp_path, duck):
    """The factor multiplies the texture: ignoring it (the plain duck as reference) is caught."""
    glb, _ = _write(tmp_path, duck, case_base_color_factor)
    plain = write_obj(tmp_path / "plain.obj", duck.verts, duck.faces, duck.uvs, duck.image)
    (ours, _), (theirs, _) = _render(glb), _render(plain)
    both = ours.mask & theirs.mask
    assert np.abs(ours.rgb.astype(int) - theirs.rgb.astype(int))[both].mean() > 10


def test_a_ktx2_texture_is_named_and_its_factor_colour_used(tmp_path, duck):
    glb = Glb()
    image = glb.image(b"\xabKTX 20\xbb\r\n\x1a\n" + bytes(64), "image/ktx2", "albedo.ktx2")
    texture = glb.texture(None, extensions={"KHR_texture_basisu": {"source": image}})
    _duck_mesh(glb, duck, glb.material(factor=FACTOR, texture=texture))
    glb.node(mesh=0)
    path = glb.save(str(tmp_path / "ktx2.glb"), used=["KHR_texture_basisu"])
    (ours, mesh) = _render(path)
    assert any("albedo.ktx2" in w and "KTX2" in w and "factor colour" in w
               for w in mesh.warnings), mesh.warnings
    reference = write_obj(tmp_path / "ref.obj", duck.verts, duck.faces,
                          kd=linear_to_srgb(FACTOR[:3]))
    theirs, _ = _render(reference)
    both = ours.mask & theirs.mask
    assert np.abs(ours.rgb.astype(int) - theirs.rgb.astype(int))[both].mean() <= 3.0


def test_a_missing_texture_is_named_and_an_undecodable_extension_fails(tmp_path, duck):
    glb = Glb()
    glb.gltf.images.append(glb.g.Image(uri="textures/missing.png"))
    _duck_mesh(glb, duck, glb.material(factor=FACTOR, texture=glb.texture(0)))
    glb.node(mesh=0)
    mesh = load_mesh(glb.save(str(tmp_path / "missing.glb")))
    assert any("missing.png" in w for w in mesh.warnings), mesh.warnings
    unread = load_mesh(glb.save(str(tmp_path / "instancing.glb"), used=["EXT_mesh_gpu_instancing"]))
    assert any("EXT_mesh_gpu_instancing" in w and "not read" in w for w in unread.warnings)
    glb.save(str(tmp_path / "meshopt.glb"), required=["EXT_meshopt_compression"])
    with pytest.raises(MeshError, match="meshopt.glb: requires the glTF extension "
                                        "EXT_meshopt_compression"):
        load_mesh(tmp_path / "meshopt.glb")


def test_uris_stay_inside_the_files_folder(tmp_path, duck):
    (tmp_path / "secret.png").write_bytes(png(duck.image))
    os.makedirs(tmp_path / "inner")
    for uri in ("../secret.png", "file:///etc/passwd", "https://example.com/a.png",
                str(tmp_path / "secret.png")):
        glb = Glb()
        glb.gltf.images.append(glb.g.Image(uri=uri))
        _duck_mesh(glb, duck, glb.material(texture=glb.texture(0)))
        glb.node(mesh=0)
        mesh = load_mesh(glb.save(str(tmp_path / "inner" / "case.glb")))
        assert any("outside its folder" in w for w in mesh.warnings), (uri, mesh.warnings)


def test_feature_files_in_the_objaverse_layout_build_like_their_references(tmp_path, duck):
    """The feature files as Objaverse 1.0 lays them out (uid object ids, an LVIS category) and
    their references as a mesh folder, built alike: every object's stored views agree, and a
    KTX2 texture is named in the object's warnings."""
    import gzip
    import json
    import shutil

    import zarr

    from tap3d.builder import BuildConfig, build

    from helpers import objaverse_uid

    base = tmp_path / "objaverse" / "hf-objaverse-v1"
    os.makedirs(base / "glbs" / "000-000")
    paths, references = {}, {}
    for name, case in CASES.items():
        uid, work = objaverse_uid(name), tmp_path / "cases" / name
        os.makedirs(work)
        glb, reference = _write(work, duck, case)
        shutil.move(glb, base / "glbs" / "000-000" / f"{uid}.glb")
        paths[uid] = f"glbs/000-000/{uid}.glb"
        shutil.copytree(work, tmp_path / "references" / uid)
        references[uid] = name
    ktx2 = objaverse_uid("ktx2")
    glb = Glb()
    image = glb.image(b"\xabKTX 20\xbb\r\n\x1a\n" + bytes(64), "image/ktx2", "albedo.ktx2")
    _duck_mesh(glb, duck, glb.material(factor=FACTOR, texture=glb.texture(
        None, extensions={"KHR_texture_basisu": {"source": image}})))
    glb.node(mesh=0)
    glb.save(str(base / "glbs" / "000-000" / f"{ktx2}.glb"), used=["KHR_texture_basisu"])
    paths[ktx2] = f"glbs/000-000/{ktx2}.glb"
    for file, data in (("object-paths.json.gz", paths),
                       ("lvis-annotations.json.gz", {"duck": sorted(references)})):
        with gzip.open(base / file, "wt") as f:
            json.dump(data, f)
    config = BuildConfig(views=10, image_size=S, points=256, shard_size=4)
    built = {}
    for kind, source in (("glb", base.parent), ("ref", tmp_path / "references")):
        out = str(tmp_path / f"{kind}.zarr")
        summary = build(str(source), out, config, workers=0, progress=False)
        assert summary.done == len(paths) - (kind == "ref"), summary.format()
        built[kind] = zarr.open_group(out, mode="r")
    ours, theirs = built["glb"], built["ref"]
    ids = [str(i) for i in ours["object_id"][:]]
    assert sorted(ids) == sorted(paths)
    category = dict(zip(ids, (str(c) for c in ours["category"][:])))
    assert category[ktx2] == "uncategorized" and all(category[u] == "duck" for u in references)
    row = {str(i).split("/")[0]: k for k, i in enumerate(theirs["object_id"][:])}
    for k, uid in enumerate(ids):
        warnings = str(ours["warnings"][k])
        if uid == ktx2:
            assert "albedo.ktx2" in warnings and "KTX2" in warnings, warnings
            continue
        assert warnings == "", (references[uid], warnings)
        a, b = ours["mask"][k], theirs["mask"][row[uid]]
        both = a & b
        rgb = np.abs(ours["rgb"][k].astype(int) - theirs["rgb"][row[uid]].astype(int))[both]
        assert (a != b).sum() / b.sum() <= 0.01 and rgb.mean() <= 3.0, (references[uid],
                                                                      rgb.mean())


def _planes(tmp_path, duck, cut: bool):
    """Two parallel squares: at the front the duck's texture whose left half has alpha 0
    (``alphaMode: MASK``, ``cut``) or, as the reference, only its right half; at the back one
    colour. Returns the GLB or the reference OBJ."""
    from PIL import Image

    image = np.asarray(Image.fromarray(duck.image).resize((64, 64)))
    alpha = np.where(np.arange(64) < 32, 0, 255).astype(np.uint8)[None, :, None]
    rgba = np.concatenate([image, np.broadcast_to(alpha, (64, 64, 1))], 2)
    front_x = (-1.0, 1.0) if cut else (0.0, 1.0)
    verts = np.array([[front_x[0], -1, 0.3], [front_x[1], -1, 0.3], [front_x[1], 1, 0.3],
                      [front_x[0], 1, 0.3], [-1, -1, -0.3], [1, -1, -0.3], [1, 1, -0.3],
                      [-1, 1, -0.3]], np.float32)
    u0 = 0.0 if cut else 0.5
    uvs = np.array([[u0, 1], [1, 1], [1, 0], [u0, 0]] + [[0, 0]] * 4, np.float32)  # glTF's v
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 6, 5], [4, 7, 6]], np.int64)
    if not cut:
        return write_obj(tmp_path / "planes.obj", verts, faces, uvs * [1, -1] + [0, 1],
                         face_groups=[(np.array([1, 1, 0, 0], bool), (1, 1, 1), image),
                                      (np.array([0, 0, 1, 1], bool),
                                       linear_to_srgb(FACTOR[:3]), None)])
    glb = Glb()
    texture = glb.texture(glb.image(png(rgba), "image/png", "leaf"))
    masked = glb.material(texture=texture)
    glb.gltf.materials[masked].alphaMode, glb.gltf.materials[masked].alphaCutoff = "MASK", 0.5
    position, uv = glb.accessor(verts, bounds=True), glb.accessor(uvs)
    glb.mesh([{"attributes": {"POSITION": position, "TEXCOORD_0": uv}, "material": m,
               "indices": glb.accessor(faces[rows].reshape(-1), 5125)}
              for rows, m in (([0, 1], masked), ([2, 3], glb.material(factor=FACTOR)))])
    glb.node(mesh=0)
    return glb.save(str(tmp_path / "planes.glb"))


@pytest.mark.parametrize("backend", ["embree", "pytorch3d"])
def test_alpha_mask_cuts_the_views_and_the_points(tmp_path, duck, backend):
    """Where ``alphaMode: MASK`` cuts a surface away, the views show what is behind it and no
    surface point lies there: like a mesh without that part."""
    from tap3d.render.surface import sample_surface

    glb, reference = _planes(tmp_path, duck, True), _planes(tmp_path, duck, False)
    cameras = make_cameras(make_layout("clip2point", 10, 2.0), 60.0)
    renderer = ViewRenderer(make_rasterizer(backend, S))
    ours, theirs = renderer(load_mesh(glb), cameras), renderer(load_mesh(reference), cameras)
    both = ours.mask & theirs.mask
    assert (ours.mask != theirs.mask).sum() / theirs.mask.sum() <= 0.01
    assert np.abs(ours.rgb.astype(int) - theirs.rgb.astype(int))[both].mean() <= 3.0
    opaque = ViewRenderer(make_rasterizer(backend, S))(
        load_mesh(glb, textures="none"), cameras)  # no appearance read: nothing is cut
    assert (opaque.mask != theirs.mask).sum() / theirs.mask.sum() > 0.05
    mesh = load_mesh(glb)
    points, _ = sample_surface(mesh, 2000, seed=0)
    front = points[:, 2] > 0
    assert front.any() and (points[front, 0] >= -0.01).all()  # none on the cut half
