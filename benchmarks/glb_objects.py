"""Textured multi-primitive GLB files made from real meshes, beside the same meshes as OBJ + MTL +
images, for ``benchmarks/build.py --tables glb`` (Objaverse-like objects: several primitives and
materials, embedded PNG/JPEG textures, ``baseColorFactor``).

Each object is one of pybullet_data's textured meshes (:data:`TEXTURED`: an OBJ whose MTL has a
``map_Kd`` image, every face with texture coordinates), split into two halves by its face
centroids along its longest axis:

- primitive 0 (material 0): the mesh's own image ``A``, base colour factor 1;
- primitive 1 (material 1): a second image ``B`` (``A`` with its channels rotated, RGB -> GBR:
  a different texture of the same size, encoded as ``A`` is) times the linear base colour
  factor :data:`FACTOR`.

The GLB embeds ``A``'s original bytes (its PNG or JPEG file) and ``B`` in its binary chunk,
one mesh of two primitives (``POSITION`` with bounds, ``TEXCOORD_0``, indices), one node. The
OBJ twin renders the same: two ``usemtl`` groups, ``map_Kd`` ``A`` (the same file) and ``B``
premultiplied by the factor as glTF does (sRGB -> linear, times the factor, -> sRGB), encoded as
``A`` is; so both formats decode two images of the same sizes and formats per object.

Written with pygltflib; nothing here is imported from tests/.
"""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

#: ``(category, path under pybullet_data)``: textured meshes with texture coordinates on every
#: face (24 to 28,750 faces; images of 256 x 256 to 2048 x 2048 px, PNG and JPEG).
TEXTURED = [
    ("duck", "duck.obj"),
    ("ball", "soccerball.obj"),
    ("a1", "a1/meshes/trunk.obj"),
    ("aliengo", "aliengo/meshes/trunk.obj"),
    ("laikago", "laikago/chassis.obj"),
    ("laikago", "laikago/lower_leg3.obj"),
    ("racecar", "racecar/meshes/left_front_wheel.obj"),
    ("franka", "franka_panda/meshes/visual/link1.obj"),
    ("torus", "torus/torus_textured.obj"),
    ("domino", "domino/domino.obj"),
    ("tray", "tray/tray_textured2.obj"),
    ("table", "table/table.obj"),
]
#: Linear RGBA base colour factor of the second material.
FACTOR = (0.8, 0.6, 0.45, 1.0)
#: glTF component types.
FLOAT, USHORT, UINT = 5126, 5123, 5125
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg"}


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def encode(image: np.ndarray, fmt: str) -> bytes:
    """An ``(H, W, 3)`` uint8 image as PNG or JPEG (quality 90) bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


class GlbWriter:
    """A GLB under construction with pygltflib: one binary buffer, accessors, images, textures,
    materials, one mesh; :meth:`save` writes it."""

    def __init__(self):
        import pygltflib

        self.g = pygltflib
        self.gltf = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0", generator="tap3d bench"),
                                    scene=0, scenes=[pygltflib.Scene(nodes=[])])
        self.blob = bytearray()

    def _view(self, data: bytes, target: int | None = None) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        self.gltf.bufferViews.append(self.g.BufferView(buffer=0, byteOffset=len(self.blob),
                                                       byteLength=len(data), target=target))
        self.blob += data
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, component: int = FLOAT, bounds: bool = False,
                 target: int | None = None) -> int:
        kind = "SCALAR" if array.ndim == 1 else {2: "VEC2", 3: "VEC3", 4: "VEC4"}[array.shape[1]]
        dtype = {FLOAT: np.float32, USHORT: np.uint16, UINT: np.uint32}[component]
        data = np.ascontiguousarray(array, dtype)
        extra = {"min": data.min(0).tolist(), "max": data.max(0).tolist()} if bounds else {}
        self.gltf.accessors.append(self.g.Accessor(
            bufferView=self._view(data.tobytes(), target), componentType=component,
            count=len(data), type=kind, **extra))
        return len(self.gltf.accessors) - 1

    def textured_material(self, data: bytes, mime: str, factor=(1.0, 1.0, 1.0, 1.0)) -> int:
        """A material whose base colour is the embedded image ``data`` times ``factor``."""
        self.gltf.images.append(self.g.Image(bufferView=self._view(data), mimeType=mime))
        self.gltf.textures.append(self.g.Texture(source=len(self.gltf.images) - 1))
        self.gltf.materials.append(self.g.Material(
            pbrMetallicRoughness=self.g.PbrMetallicRoughness(
                baseColorFactor=list(factor),
                baseColorTexture=self.g.TextureInfo(index=len(self.gltf.textures) - 1),
                metallicFactor=0.0, roughnessFactor=1.0)))
        return len(self.gltf.materials) - 1

    def primitive(self, verts: np.ndarray, uvs: np.ndarray, faces: np.ndarray,
                  material: int):
        """A triangle primitive: ``(V, 3)`` positions, ``(V, 2)`` glTF UVs (v down),
        ``(F, 3)`` indices."""
        index = USHORT if len(verts) < 65536 else UINT
        return self.g.Primitive(
            attributes=self.g.Attributes(
                POSITION=self.accessor(verts, bounds=True, target=34962),
                TEXCOORD_0=self.accessor(uvs, target=34962)),
            indices=self.accessor(faces.reshape(-1), index, target=34963), material=material)

    def save(self, path: str, primitives: list, name: str) -> str:
        self.gltf.meshes.append(self.g.Mesh(primitives=primitives, name=name))
        self.gltf.nodes.append(self.g.Node(mesh=0, name=name))
        self.gltf.scenes[0].nodes.append(0)
        self.gltf.buffers = [self.g.Buffer(byteLength=len(self.blob))]
        self.gltf.set_binary_blob(bytes(self.blob))
        self.gltf.save_binary(path)
        return path


def _halves(obj) -> list[np.ndarray]:
    """Two face masks: centroids below and above the median along the longest axis."""
    axis = int(np.argmax(np.ptp(obj.verts, 0)))
    centroid = obj.verts[obj.faces][:, :, axis].mean(1)
    low = centroid < np.median(centroid)
    if low.all() or not low.any():  # a flat split (e.g. two triangles at one height)
        low = np.arange(len(obj.faces)) < len(obj.faces) // 2
    return [low, ~low]


def _unwelded(obj, mask: np.ndarray):
    """The faces of ``mask`` with glTF's one UV per vertex: ``(verts, uvs (OBJ's, v up),
    faces)``."""
    pairs = np.stack([obj.faces[mask].reshape(-1), obj.faces_uvs[mask].reshape(-1)], 1)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return (obj.verts[unique[:, 0]].astype(np.float32),
            obj.verts_uvs[unique[:, 1]].astype(np.float32),
            inverse.reshape(-1, 3).astype(np.int64))


def write_pair(root: str, category: str, rel: str, glb_folder: str, obj_folder: str) -> dict:
    """One object as ``<glb_folder>/<category>/<name>.glb`` and
    ``<obj_folder>/<category>/<name>.obj`` (+ MTL and both images); returns what it holds."""
    from tap3d.render.objfile import read_obj

    obj = read_obj(os.path.join(root, rel))
    images = {m.image for m in obj.materials if m.image}
    if len(images) != 1 or (obj.faces_uvs < 0).any():
        raise ValueError(f"{rel}: expected one texture image and UVs on every face")
    source = images.pop()
    with Image.open(source) as opened:
        fmt = opened.format if opened.format in _MIME else "PNG"  # e.g. a GIF: as PNG
        rgb = np.asarray(opened.convert("RGB"))
    if opened.format in _MIME:  # A as its file holds it
        with open(source, "rb") as f:
            first = f.read()
    else:
        first = encode(rgb, "PNG")
    second = np.ascontiguousarray(rgb[..., [1, 2, 0]])  # B: channels rotated
    baked = np.round(linear_to_srgb(srgb_to_linear(second / 255.0) * np.asarray(FACTOR[:3]))
                     * 255).astype(np.uint8)
    name = os.path.splitext(os.path.basename(rel))[0]
    suffix = ".jpg" if fmt == "JPEG" else ".png"
    for folder in (glb_folder, obj_folder):
        os.makedirs(os.path.join(folder, category), exist_ok=True)

    writer, primitives, masks = GlbWriter(), [], _halves(obj)
    materials = [writer.textured_material(first, _MIME[fmt]),
                 writer.textured_material(encode(second, fmt), _MIME[fmt], FACTOR)]
    for mask, material in zip(masks, materials):
        verts, uvs, faces = _unwelded(obj, mask)
        gltf_uvs = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], 1)
        primitives.append(writer.primitive(verts, gltf_uvs, faces, material))
    glb = writer.save(os.path.join(glb_folder, category, f"{name}.glb"), primitives, name)

    stem = os.path.join(obj_folder, category, name)
    for k, data in enumerate((first, encode(baked, fmt))):
        with open(f"{stem}_{k}{suffix}", "wb") as f:
            f.write(data)
    with open(f"{stem}.mtl", "w") as f:
        f.write("".join(f"newmtl m{k}\nKd 1 1 1\nmap_Kd {name}_{k}{suffix}\n" for k in range(2)))
    lines = [f"mtllib {name}.mtl"]
    lines += [f"v {x:.7g} {y:.7g} {z:.7g}" for x, y, z in obj.verts]
    lines += [f"vt {u:.7g} {v:.7g}" for u, v in obj.verts_uvs]
    for k, mask in enumerate(masks):
        lines.append(f"usemtl m{k}")
        lines += [f"f {a}/{ta} {b}/{tb} {c}/{tc}" for (a, b, c), (ta, tb, tc) in
                  zip(obj.faces[mask] + 1, obj.faces_uvs[mask] + 1)]
    with open(f"{stem}.obj", "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"name": f"{category}/{name}", "faces": len(obj.faces),
            "primitives": len(primitives), "materials": len(materials),
            "image": f"{rgb.shape[1]} x {rgb.shape[0]} {fmt}", "glb": glb,
            "obj": f"{stem}.obj", "glb_bytes": os.path.getsize(glb)}


def make_sets(root: str, out: str, objects=TEXTURED) -> tuple[str, str, list[dict]]:
    """The GLB set and its OBJ twin as mesh folders ``<out>/glb`` and ``<out>/obj``; returns
    both folders and one dict per object (:func:`write_pair`)."""
    glb_folder, obj_folder = os.path.join(out, "glb"), os.path.join(out, "obj")
    made = [write_pair(root, category, rel, glb_folder, obj_folder)
            for category, rel in objects]
    return glb_folder, obj_folder, made
