"""The fast render path: tap3d.render.objfile (tinyobjloader) gives PyTorch3D's meshes,
per-material textures at source resolution, and the covered-pixel shader equals
HardPhongShader."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
import torch

from tap3d.render.cameras import make_cameras, make_layout
from tap3d.render.meshes import load_mesh
from tap3d.render.objfile import read_obj
from tap3d.render.rasterize import EmbreeRasterizer
from tap3d.render.shade import LIGHTS, CoveredShader, PhongShader, ViewRenderer, shade_covered
from tap3d.render.textures import MaterialTextures, read_image

S = 64


def _pytorch3d_obj(path):
    from pytorch3d.io import load_obj

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_obj(path, load_textures=True, create_texture_atlas=False)


def _to_images_layout(src: str, root) -> str:
    """Copy an OBJ as ShapeNetCore v2 lays it out: models/x.obj + x.mtl, images/ beside."""
    models, images = root / "model" / "models", root / "model" / "images"
    models.mkdir(parents=True)
    images.mkdir(parents=True)
    folder = os.path.dirname(src)
    obj = models / "model_normalized.obj"
    lines = open(src, errors="ignore").read().splitlines()
    mtl = next(line.split(maxsplit=1)[1].strip() for line in lines if line.startswith("mtllib"))
    obj.write_text("\n".join("mtllib model_normalized.mtl" if line.startswith("mtllib") else line
                             for line in lines) + "\n")
    out = []
    for line in open(os.path.join(folder, mtl), errors="ignore").read().splitlines():
        parts = line.split()
        if parts and parts[0] == "map_Kd":
            shutil.copyfile(os.path.join(folder, parts[-1]), images / parts[-1])
            line = f"map_Kd ../images/{parts[-1]}"
        out.append(line)
    (models / "model_normalized.mtl").write_text("\n".join(out) + "\n")
    return str(obj)


@pytest.mark.parametrize("rel", [
    "franka_panda/meshes/visual/link6.obj",  # 17 materials sharing one PNG
    "roboschool/models_outdoor/stadium/stadium.obj",  # JPG and materials without an image
    "laikago/chassis.obj",  # polygons of 4 and more corners (fans)
    "soccerball.obj",  # pentagons and hexagons
    "samurai_monastry.obj",  # 125k faces, 81 materials, no images
    "images_layout",  # link3 copied with ../images/ texture paths
])
def test_loader_matches_pytorch3d(rel, pybullet_root, tmp_path):
    path = _to_images_layout(os.path.join(pybullet_root, "franka_panda/meshes/visual/link3.obj"),
                             tmp_path) if rel == "images_layout" else os.path.join(pybullet_root, rel)
    verts, faces, aux = _pytorch3d_obj(path)
    obj = read_obj(path)
    np.testing.assert_array_equal(obj.verts, verts.numpy())
    np.testing.assert_array_equal(obj.faces, faces.verts_idx.numpy())
    np.testing.assert_array_equal(obj.verts_uvs, aux.verts_uvs.numpy().reshape(-1, 2))
    has_uv = (faces.textures_idx >= 0).all(1).numpy()
    np.testing.assert_array_equal(obj.faces_uvs[has_uv], faces.textures_idx.numpy()[has_uv])
    # materials: the same name, colour and image on every face
    names = list(aux.material_colors)
    assert len(names) > 0
    p3d = np.array(names, dtype=object)[faces.materials_idx.numpy()]
    ours = np.array([m.name for m in obj.materials], dtype=object)[obj.materials_idx]
    np.testing.assert_array_equal(ours, p3d)
    by_name = {m.name: m for m in obj.materials}
    for name, props in aux.material_colors.items():
        np.testing.assert_allclose(by_name[name].diffuse, props["diffuse_color"].numpy())
    assert {m.name for m in obj.materials if m.image} >= set(aux.texture_images)
    for name, image in aux.texture_images.items():
        np.testing.assert_array_equal(read_image(by_name[name].image), np.round(
            image.numpy() * 255).astype(np.uint8))
    if rel == "images_layout":
        assert all("/images/" in m.image for m in obj.materials if m.image)


def _hard_phong(batch, cameras, fragments):
    from pytorch3d.renderer import BlendParams, HardPhongShader, PointLights

    lights = PointLights(location=cameras.get_camera_center(),
                         ambient_color=(LIGHTS["ambient_color"],),
                         diffuse_color=(LIGHTS["diffuse_color"],),
                         specular_color=(LIGHTS["specular_color"],))
    shader = HardPhongShader(cameras=cameras, lights=lights,
                             blend_params=BlendParams(background_color=(1.0, 1.0, 1.0)))
    return shader(fragments, batch)[..., :3].clamp(0, 1).numpy()


@pytest.mark.parametrize("rel, textures, kind", [
    ("duck.obj", "uv", "TexturesUV"),  # one image: PyTorch3D's own UV sampling
    ("franka_panda/meshes/visual/link6.obj", "uv", "SampledTextures"),
    ("textured_sphere_smooth.obj", "atlas", "TexturesAtlas"),  # wrapped UVs
    ("roboschool/models_outdoor/stadium/stadium.obj", "atlas", "TexturesAtlas"),
    ("toys/shape_sorter.obj", "uv", "SampledTextures"),  # material colours only, no image
])
def test_covered_shading_equals_hard_phong(rel, textures, kind, pybullet_root):
    mesh = load_mesh(os.path.join(pybullet_root, rel), textures=textures)
    cameras = make_cameras(make_layout("clip2point", 10))
    batch = mesh.to_meshes().extend(10)
    assert type(batch.textures).__name__ == kind
    fragments = EmbreeRasterizer(S)(batch, cameras)  # the same Fragments for both shaders
    reference = _hard_phong(batch, cameras, fragments)
    pix = fragments.pix_to_face[..., 0].numpy()
    mask = pix >= 0
    view = np.nonzero(mask)[0]
    ours = np.ones_like(reference)
    ours[mask] = np.clip(shade_covered(
        mesh, pix[mask] % mesh.num_faces, fragments.bary_coords[..., 0, :].numpy()[mask], view,
        cameras.get_camera_center().numpy()), 0, 1)
    assert mask.mean() > 0.05
    difference = np.abs(ours - reference)
    assert difference.mean() <= 1 / 255, difference.mean()
    assert difference[mask].mean() <= 1 / 255 and difference.max() < 0.1
    # and the renderer's two shaders give the same uint8 images
    embree = EmbreeRasterizer(S)
    a = ViewRenderer(embree, CoveredShader())(mesh, cameras)
    b = ViewRenderer(embree, PhongShader())(mesh, cameras)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert np.abs(a.rgb.astype(float) - b.rgb.astype(float)).mean() <= 1.0


def test_shaders_by_name_and_in_batches(pybullet_root):
    """``SHADERS`` maps the ``--shader`` names to the classes; only the tap3d shader does plain
    shading; the PyTorch3D shader gives the same image whatever its batches of views."""
    from tap3d.render.rasterize import PyTorch3DRasterizer
    from tap3d.render.shade import SHADERS

    assert SHADERS == {"tap3d": CoveredShader, "pytorch3d": PhongShader}
    assert CoveredShader("plain").shading == "plain"
    with pytest.raises(ValueError, match="plain shading"):
        PhongShader("plain")
    with pytest.raises(ValueError, match="shading must be one of"):
        CoveredShader("glossy")
    mesh = load_mesh(os.path.join(pybullet_root, "duck.obj"))
    cameras = make_cameras(make_layout("sphere", 5))
    rasterizer = PyTorch3DRasterizer(S)
    whole = ViewRenderer(rasterizer, PhongShader(), normal_maps=True)(mesh, cameras)
    rasterizer.max_batch_faces = 2 * mesh.num_faces  # batches of 2, 2 and 1 views
    split = ViewRenderer(rasterizer, PhongShader(max_batch_faces=2 * mesh.num_faces),
                         normal_maps=True)(mesh, cameras)
    for name in ("rgb", "mask", "depth", "normal"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(split, name))


def _write_image(path, mode, color):
    from PIL import Image

    Image.new(mode, (32, 16), color).save(path)


def test_each_image_shows_where_its_material_is(pybullet_root, tmp_path):
    """link3's four materials get a red JPG, a blue RGBA PNG (../images/), a grayscale PNG and
    a plain green colour: every covered pixel shows its own material's colour."""
    src = os.path.join(pybullet_root, "franka_panda/meshes/visual/link3.obj")
    path = _to_images_layout(src, tmp_path)
    images = tmp_path / "model" / "images"
    _write_image(images / "red.jpg", "RGB", (230, 20, 20))
    _write_image(images / "blue.png", "RGBA", (20, 20, 230, 0))
    _write_image(tmp_path / "model" / "models" / "grey.png", "L", 128)
    mtl = tmp_path / "model" / "models" / "model_normalized.mtl"
    names = [line.split()[1] for line in mtl.read_text().splitlines() if line.startswith("newmtl")]
    assert len(names) == 4
    maps = ["map_Kd ../images/red.jpg", "map_Kd ../images/blue.png", "map_Kd grey.png",
            "Kd 0 1 0"]
    mtl.write_text("".join(f"newmtl {n}\n{m}\n" for n, m in zip(names, maps)))
    mesh = load_mesh(path)
    assert not mesh.warnings and isinstance(mesh.textures, MaterialTextures)
    assert sum(image is not None for image in mesh.textures.images) == 3
    cameras = make_cameras(make_layout("sphere", 8))
    views = ViewRenderer(EmbreeRasterizer(S))(mesh, cameras)
    pix = EmbreeRasterizer(S).rasterize_views(mesh.verts, mesh.faces, cameras).pix_to_face
    pix = pix[..., 0].numpy()
    material = read_obj(path).materials_idx[pix[views.mask]]
    rgb = views.rgb[views.mask].astype(int)
    order = [names.index(m.name) for m in read_obj(path).materials]
    r, g, b = rgb.T
    expected = {0: (r > g + 40) & (r > b + 40), 1: (b > r + 40) & (b > g + 40),
                2: (r == g) & (g == b), 3: (g > r + 40) & (g > b + 40)}
    for index, mtl_index in enumerate(order):
        here = material == index
        assert here.sum() >= 20, (names[mtl_index], here.sum())
        assert expected[mtl_index][here].mean() >= 0.99, names[mtl_index]


def test_wrapping_repeat_and_clamp():
    """UVs past [0, 1]: repeat drops the integer part, clamp holds the edge texel."""
    image = np.zeros((2, 4, 3), np.uint8)
    image[..., 0] = [[0, 80, 160, 240], [0, 80, 160, 240]]
    faces = np.array([[0, 1, 2]])
    uvs = np.array([[1.0 / 3, 0.5], [1.0 / 3 + 2.0, 0.5], [-1.0 + 1.0 / 3, 0.5]], np.float32)
    bary = np.eye(3, dtype=np.float32)
    face = np.zeros(3, np.int64)
    for wrap, expected in (("repeat", [80, 80, 80]), ("clamp", [80, 240, 0])):
        textures = MaterialTextures(faces, uvs, np.array([[0, 1, 2]]), np.zeros(1, np.int64),
                                    np.ones((1, 3), np.float32), [image], [wrap])
        red = textures.sample(face, bary)[:, 0] * 255
        np.testing.assert_allclose(red, expected, atol=0.5)


def test_bad_numbers_are_caught(tmp_path):
    """tinyobjloader reads nan and inf as 0; the loader still rejects them."""
    from tap3d.render.meshes import MeshError

    for token in ("nan", "-inf", "NaN"):
        path = tmp_path / f"{token}.obj"
        path.write_text(f"v 0 0 0\nv 1 {token} 0\nv 0 1 0\nf 1 2 3\n")
        with pytest.raises(MeshError, match="NaN or infinite"):
            load_mesh(path)
    # a material or comment naming "inf" is no vertex
    fine = tmp_path / "fine.obj"
    fine.write_text("# info\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl infinity\nf 1 2 3\n")
    assert load_mesh(fine).num_faces == 1


def test_same_views_with_pytorch3d_loader(pybullet_root, tmp_path):
    """The atlas path through tinyobjloader renders what PyTorch3D's load_obj path renders."""
    path = os.path.join(pybullet_root, "franka_panda/meshes/visual/link6.obj")
    cameras = make_cameras(make_layout("clip2point", 10))
    renderer = ViewRenderer(EmbreeRasterizer(S))
    fast = renderer(load_mesh(path, textures="atlas"), cameras)
    reference = renderer(load_mesh(path, textures="atlas", obj_loader="pytorch3d"), cameras)
    np.testing.assert_array_equal(fast.mask, reference.mask)
    assert np.abs(fast.rgb.astype(float) - reference.rgb.astype(float)).mean() <= 0.5
    assert torch.equal(load_mesh(path).faces, load_mesh(path, textures="atlas",
                                                        obj_loader="pytorch3d").faces)
