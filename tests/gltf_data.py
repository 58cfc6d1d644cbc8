"""GLB files made from a real textured mesh, one glTF feature each, beside a reference mesh that
must render the same (after Khronos' glTF-Sample-Assets: one file per feature with a known
appearance). The meshes: pybullet_data's duck (one texture) and, for untextured features, its
teddy; files are written with pygltflib, references as OBJ + MTL + PNG or PLY."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from tap3d.render.basecolor import linear_to_srgb, srgb_to_linear
from tap3d.render.objfile import read_obj

#: glTF component types.
FLOAT, UBYTE, USHORT, UINT = 5126, 5121, 5123, 5125


class Glb:
    """A GLB under construction: one binary buffer, accessors, images, then :meth:`save`."""

    def __init__(self):
        import pygltflib

        self.g = pygltflib
        self.gltf = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0"), scene=0,
                                    scenes=[pygltflib.Scene(nodes=[])])
        self.blob = bytearray()

    def view(self, data: bytes) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        self.gltf.bufferViews.append(self.g.BufferView(buffer=0, byteOffset=len(self.blob),
                                                       byteLength=len(data)))
        self.blob += data
        return len(self.gltf.bufferViews) - 1

    def accessor(self, array: np.ndarray, component: int = FLOAT, normalized: bool = False,
                 bounds: bool = False) -> int:
        kind = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}[1 if array.ndim == 1 else
                                                              array.shape[1]]
        dtype = {FLOAT: np.float32, UBYTE: np.uint8, USHORT: np.uint16, UINT: np.uint32}[component]
        data = np.ascontiguousarray(array, dtype)
        extra = {"min": data.min(0).tolist(), "max": data.max(0).tolist()} if bounds else {}
        self.gltf.accessors.append(self.g.Accessor(
            bufferView=self.view(data.tobytes()), componentType=component, count=len(data),
            type=kind, normalized=normalized or None, **extra))
        return len(self.gltf.accessors) - 1

    def image(self, data: bytes, mime: str, name: str | None = None) -> int:
        self.gltf.images.append(self.g.Image(bufferView=self.view(data), mimeType=mime,
                                             name=name))
        return len(self.gltf.images) - 1

    def texture(self, source: int | None, sampler: int | None = None,
                extensions: dict | None = None) -> int:
        self.gltf.textures.append(self.g.Texture(source=source, sampler=sampler,
                                                 extensions=extensions or {}))
        return len(self.gltf.textures) - 1

    def material(self, factor=(1.0, 1.0, 1.0, 1.0), texture: int | None = None,
                 tex_coord: int = 0, texture_extensions: dict | None = None,
                 extensions: dict | None = None) -> int:
        info = None if texture is None else self.g.TextureInfo(
            index=texture, texCoord=tex_coord, extensions=texture_extensions or {})
        self.gltf.materials.append(self.g.Material(
            pbrMetallicRoughness=self.g.PbrMetallicRoughness(
                baseColorFactor=list(factor), baseColorTexture=info, metallicFactor=0.0),
            extensions=extensions or {}))
        return len(self.gltf.materials) - 1

    def mesh(self, primitives: list[dict]) -> int:
        """``primitives``: dicts of ``attributes`` (name -> accessor), ``indices``,
        ``material`` and ``extensions``."""
        self.gltf.meshes.append(self.g.Mesh(primitives=[self.g.Primitive(
            attributes=self.g.Attributes(**p["attributes"]), indices=p.get("indices"),
            material=p.get("material"), extensions=p.get("extensions", {}))
            for p in primitives]))
        return len(self.gltf.meshes) - 1

    def node(self, root: bool = True, **fields) -> int:
        self.gltf.nodes.append(self.g.Node(**fields))
        index = len(self.gltf.nodes) - 1
        if root:
            self.gltf.scenes[0].nodes.append(index)
        return index

    def save(self, path: str, used=(), required=()) -> str:
        self.gltf.buffers = [self.g.Buffer(byteLength=len(self.blob))]
        self.gltf.extensionsUsed = sorted(set(used) | set(required))
        self.gltf.extensionsRequired = sorted(required)
        self.gltf.set_binary_blob(bytes(self.blob))
        self.gltf.save_binary(path)
        return path


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


class Duck:
    """The duck unwelded to glTF's one UV per vertex: ``verts (V, 3)``, ``faces (F, 3)``,
    ``uvs (V, 2)`` (OBJ's, v up) and its texture ``image (H, W, 3)`` uint8."""

    def __init__(self, pybullet_root: str, name: str = "duck.obj"):
        obj = read_obj(os.path.join(pybullet_root, name))
        pairs = np.stack([obj.faces.reshape(-1), obj.faces_uvs.reshape(-1)], 1)
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        self.verts = obj.verts[unique[:, 0]].astype(np.float32)
        self.uvs = obj.verts_uvs[np.maximum(unique[:, 1], 0)].astype(np.float32)
        self.faces = inverse.reshape(-1, 3).astype(np.int64)
        image = obj.materials[0].image if obj.materials else None
        self.image = np.asarray(Image.open(image).convert("RGB")) if image else None

    @property
    def gltf_uvs(self) -> np.ndarray:
        """glTF's texture coordinates (v down)."""
        return np.stack([self.uvs[:, 0], 1.0 - self.uvs[:, 1]], 1)


def write_obj(path: str, verts, faces, uvs=None, image: np.ndarray | None = None,
              kd=(1.0, 1.0, 1.0), face_groups=None) -> str:
    """An OBJ (+ MTL + PNG) reference: one material (``kd`` and ``image``), or
    ``face_groups``: a list of ``(face mask, kd, image or None)`` materials."""
    stem = os.path.splitext(path)[0]
    groups = face_groups or [(np.ones(len(faces), bool), kd, image)]
    lines = [f"mtllib {os.path.basename(stem)}.mtl"]
    lines += [f"v {x:.7f} {y:.7f} {z:.7f}" for x, y, z in verts]
    if uvs is not None:
        lines += [f"vt {u:.7f} {v:.7f}" for u, v in uvs]
    mtl = []
    for k, (mask, color, picture) in enumerate(groups):
        mtl += [f"newmtl m{k}", "Kd {:.6f} {:.6f} {:.6f}".format(*color)]
        if picture is not None:
            Image.fromarray(picture).save(f"{stem}_{k}.png")
            mtl.append(f"map_Kd {os.path.basename(stem)}_{k}.png")
        lines.append(f"usemtl m{k}")
        for a, b, c in np.asarray(faces)[mask] + 1:
            lines.append(f"f {a}/{a} {b}/{b} {c}/{c}" if uvs is not None else f"f {a} {b} {c}")
    with open(f"{stem}.mtl", "w") as f:
        f.write("\n".join(mtl) + "\n")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_ply(path: str, verts, faces, colors) -> str:
    """A PLY reference with sRGB vertex colours (``(V, 3)`` floats in [0, 1])."""
    import trimesh

    rgba = np.concatenate([np.round(np.clip(colors, 0, 1) * 255), np.full((len(verts), 1), 255)],
                          1).astype(np.uint8)
    trimesh.Trimesh(verts, faces, vertex_colors=rgba, process=False).export(path)
    return path


def premultiplied(image: np.ndarray, factor) -> np.ndarray:
    """An sRGB image times a linear factor, as glTF multiplies them, back in sRGB uint8."""
    linear = srgb_to_linear(image / 255.0) * np.asarray(factor, np.float32)[:3]
    return np.round(linear_to_srgb(linear) * 255).astype(np.uint8)
