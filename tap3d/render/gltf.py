"""glTF 2.0 files (``.glb``, ``.gltf``) read as their viewers show them: the scene's triangles in
world space and each surface point's base colour (Khronos glTF 2.0 specification, sections 3.7
"Concepts: Geometry", 3.9 "Materials" and the extensions below).

The file's structure is read by pygltflib; its buffers, accessors, scene graph and materials
here (:mod:`tap3d.render.gltfdata` reads the buffers, accessors and images). What
:func:`read_gltf` gives:

- every ``TRIANGLES``, ``TRIANGLE_STRIP`` and ``TRIANGLE_FAN`` primitive of every mesh instance
  of the default scene (or scene 0, or every root node when there is no scene), its
  ``POSITION`` moved by its node's world matrix (``matrix``, or translation x rotation x scale,
  nested), winding reversed where that matrix mirrors (negative determinant), so that instancing,
  nesting and negative scales render as placed;
- per vertex, the texture coordinates of its material's base colour texture (the ``texCoord``
  set the texture names, moved by ``KHR_texture_transform``) and ``COLOR_0`` (linear RGBA,
  white when absent);
- per material, the base colour factor (linear RGBA), the base colour image and its sampler's
  wrapping: ``pbrMetallicRoughness.baseColorTexture`` / ``baseColorFactor``, or
  ``KHR_materials_pbrSpecularGlossiness``'s ``diffuseTexture`` / ``diffuseFactor``; the
  ``alphaMode`` and ``alphaCutoff``.

Compression and image formats are never silent: ``KHR_draco_mesh_compression`` geometry is
decoded with DracoPy; ``EXT_texture_webp`` and the PNG and JPEG images with Pillow; an image
that cannot be decoded here (``KHR_texture_basisu`` KTX2, a missing or unreadable file) leaves
its material's factor colour and a warning naming the image and the reason;
``EXT_meshopt_compression`` geometry, which no maintained Python decoder reads, fails the file
with a :class:`~tap3d.render.objfile.MeshError` naming the extension, as does any other
extension the file marks required (:data:`~tap3d.render.gltfdata.SUPPORTED_EXTENSIONS`).

A file is data: its URIs never reach outside its folder (:mod:`tap3d.render.gltfdata`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tap3d.render.gltfdata import SUPPORTED_EXTENSIONS, GltfFile
from tap3d.render.errors import MeshError

__all__ = ["GltfMaterial", "GltfScene", "read_gltf"]

#: Sampler wrap modes (section 5.26): repeat, clamp to edge, mirrored repeat.
_WRAPS = {10497: "repeat", 33071: "clamp", 33648: "mirror"}


@dataclass
class GltfMaterial:
    """The base colour of one material (linear factors; the image is sRGB-encoded).

    Attributes:
        factor: ``(4,)`` float32 linear RGBA base colour factor.
        image: index into :attr:`GltfScene.images`, or None (the factor alone).
        wrap: ``(s, t)`` wrap modes: ``repeat``, ``clamp`` or ``mirror``.
        alpha_mode: ``OPAQUE``, ``MASK`` or ``BLEND``.
        alpha_cutoff: the ``MASK`` threshold.
    """

    factor: np.ndarray
    image: int | None = None
    wrap: tuple[str, str] = ("repeat", "repeat")
    alpha_mode: str = "OPAQUE"
    alpha_cutoff: float = 0.5


@dataclass
class GltfScene:
    """A glTF scene flattened to one triangle mesh in world space (source units).

    Attributes:
        verts: ``(V, 3)`` float64 positions.
        faces: ``(F, 3)`` int64 vertex indices (counter-clockwise front faces).
        uvs: ``(V, 2)`` float32 base colour texture coordinates (glTF's: u right, v down;
            0 where the material has no texture).
        colors: ``(V, 4)`` float32 linear ``COLOR_0`` (1 where the primitive has none).
        face_material: ``(F,)`` int64 index into ``materials``.
        materials: one :class:`GltfMaterial` per glTF material, then the default material
            (white) for primitives without one.
        images: ``(H, W, 4)`` uint8 sRGB RGBA per glTF image, None where it could not be
            decoded (see ``notes``).
        notes: warnings, each naming the file and what was worked around.
    """

    verts: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    colors: np.ndarray
    face_material: np.ndarray
    materials: list[GltfMaterial]
    images: list[np.ndarray | None]
    notes: list[str] = field(default_factory=list)


def _node_matrix(node) -> np.ndarray:
    """A node's local 4 x 4 matrix: ``matrix`` (column-major), or T x R x S."""
    if node.matrix is not None:
        return np.asarray(node.matrix, np.float64).reshape(4, 4).T
    local = np.eye(4)
    if node.scale is not None:
        local = np.diag([*node.scale, 1.0]) @ local
    if node.rotation is not None:
        x, y, z, w = node.rotation
        rotation = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                             [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                             [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        block = np.eye(4)
        block[:3, :3] = rotation
        local = block @ local
    if node.translation is not None:
        block = np.eye(4)
        block[:3, 3] = node.translation
        local = block @ local
    return local


def _instances(gltf) -> list[tuple[int, np.ndarray]]:
    """``(mesh index, world matrix)`` of every mesh instance in the scene."""
    if gltf.scenes:
        scene = gltf.scenes[gltf.scene if gltf.scene is not None else 0]
        roots = list(scene.nodes or [])
    else:  # no scene: every node that is no one's child
        children = {c for node in gltf.nodes for c in (node.children or [])}
        roots = [i for i in range(len(gltf.nodes)) if i not in children]
    found, stack, seen = [], [(i, np.eye(4), ()) for i in reversed(roots)], 0
    while stack:
        index, parent, path = stack.pop()
        if index in path or seen > 1_000_000:
            continue  # a cycle (invalid glTF) is not followed
        seen += 1
        node = gltf.nodes[index]
        world = parent @ _node_matrix(node)
        if node.mesh is not None:
            found.append((node.mesh, world))
        stack.extend((c, world, (*path, index)) for c in reversed(node.children or []))
    return found


def _triangles(indices: np.ndarray, mode: int) -> np.ndarray:
    """``(F, 3)`` triangles of a primitive's index list in ``mode`` 4, 5 or 6."""
    if mode == 4:
        return indices[:len(indices) // 3 * 3].reshape(-1, 3)
    if len(indices) < 3:
        return np.zeros((0, 3), np.int64)
    if mode == 5:  # strip: every other triangle reversed to keep the winding
        tri = np.stack([indices[:-2], indices[1:-1], indices[2:]], 1)
        tri[1::2] = tri[1::2][:, [1, 0, 2]]
        return tri
    return np.stack([np.full(len(indices) - 2, indices[0]), indices[1:-1], indices[2:]], 1)


def _texture_transform(uv: np.ndarray, info) -> np.ndarray:
    """``KHR_texture_transform`` of a texture info applied to ``(N, 2)`` UVs: offset x
    rotation x scale (the extension's matrix; rotation counter-clockwise in UV space)."""
    ext = (info.extensions or {}).get("KHR_texture_transform") if info is not None else None
    if not ext:
        return uv
    sx, sy = ext.get("scale", (1.0, 1.0))
    angle = ext.get("rotation", 0.0)
    ox, oy = ext.get("offset", (0.0, 0.0))
    c, s = np.cos(angle), np.sin(angle)
    matrix = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]]) @ \
        np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) @ np.diag([sx, sy, 1.0])
    return (uv.astype(np.float64) @ matrix[:2, :2].T + matrix[:2, 2]).astype(np.float32)


def _texture_info(material):
    """``(texture info or None, linear RGBA factor)`` of a material's base colour."""
    gloss = (material.extensions or {}).get("KHR_materials_pbrSpecularGlossiness")
    if gloss is not None:
        info = gloss.get("diffuseTexture")
        if info is not None:
            from pygltflib import TextureInfo

            info = TextureInfo(**{k: v for k, v in info.items() if k in
                                  ("index", "texCoord", "extensions")})
        return info, np.asarray(gloss.get("diffuseFactor", [1.0] * 4), np.float32)
    pbr = material.pbrMetallicRoughness
    if pbr is None:
        return None, np.ones(4, np.float32)
    factor = pbr.baseColorFactor if pbr.baseColorFactor is not None else [1.0] * 4
    return pbr.baseColorTexture, np.asarray(factor, np.float32)


def _materials(reader: GltfFile, notes: list[str],
               decode: bool = True) -> tuple[list[GltfMaterial], list, list]:
    """The materials' base colours, the decoded images (none unless ``decode``), and each
    material's texture info."""
    gltf = reader.gltf
    images: list[np.ndarray | None] = []
    for index in range(len(gltf.images or []) if decode else 0):
        image, reason = reader.image(index)
        images.append(image)
        if reason:
            notes.append(f"{reader.path}: {reason}; the factor colour is used instead")
    materials, infos = [], []
    for material in gltf.materials or []:
        info, factor = _texture_info(material)
        image, wrap = None, ("repeat", "repeat")
        if info is not None and info.index is not None:
            texture = gltf.textures[info.index]
            extensions = texture.extensions or {}
            source = (extensions.get("EXT_texture_webp") or {}).get("source", texture.source)
            if "KHR_texture_basisu" in extensions and texture.source is None:
                source = extensions["KHR_texture_basisu"].get("source")
            if source is not None and source < len(images) and images[source] is not None:
                image = source
            if texture.sampler is not None:
                sampler = gltf.samplers[texture.sampler]
                wrap = (_WRAPS.get(sampler.wrapS or 10497, "repeat"),
                        _WRAPS.get(sampler.wrapT or 10497, "repeat"))
        materials.append(GltfMaterial(factor, image, wrap, material.alphaMode or "OPAQUE",
                                      material.alphaCutoff if material.alphaCutoff is not None
                                      else 0.5))
        infos.append(info)
    materials.append(GltfMaterial(np.ones(4, np.float32)))  # the default material
    infos.append(None)
    return materials, images, infos


def _draco(reader: GltfFile, primitive, ext: dict) -> tuple[dict, np.ndarray]:
    """``(attribute name -> (N, n) array, (F, 3) faces)`` of a Draco-compressed primitive."""
    import DracoPy

    data = reader.view(ext["bufferView"])[0]
    try:
        mesh = DracoPy.decode(data)
    except Exception as error:  # noqa: BLE001 - DracoPy raises its own and ValueError
        raise MeshError(reader.path, f"KHR_draco_mesh_compression data could not be decoded "
                                     f"({type(error).__name__}: {error})") from None
    attributes = {}
    for name, unique_id in ext.get("attributes", {}).items():
        found = mesh.get_attribute_by_unique_id(unique_id)
        if found is None:
            raise MeshError(reader.path, f"Draco data lacks attribute {name} (id {unique_id})")
        values = np.asarray(found["data"])
        accessor = getattr(primitive.attributes, name, None)
        kind = reader.gltf.accessors[accessor] if accessor is not None else None
        if kind is not None and kind.normalized and values.dtype.kind in "iu":
            values = values.astype(np.float32) / float(np.iinfo(values.dtype).max)
        attributes[name] = values.reshape(len(values), -1)
    faces = np.asarray(mesh.faces, np.int64).reshape(-1, 3)
    return attributes, faces


def read_gltf(path: str, limits=None, images: bool = True) -> GltfScene:
    """The scene of a ``.glb``/``.gltf`` file as one mesh with its base colours (module
    docstring); ``images`` False: no image is decoded (geometry only, e.g. plain shading).

    Raises:
        MeshError: unreadable file, a required extension tap3d cannot decode
            (``EXT_meshopt_compression`` ...), a URI outside the file's folder, data that runs
            past its buffer, undecodable Draco data, no triangles, or texture images over
            ``limits`` (:class:`~tap3d.render.limits.MeshLimits`). The message names the
            file and the reason.
    """
    reader = GltfFile(path, limits)
    gltf, notes = reader.gltf, []
    ignored = sorted(set(gltf.extensionsUsed or []) - set(SUPPORTED_EXTENSIONS)
                     - {"KHR_texture_basisu"})  # KTX2 images are named one by one
    if ignored:
        notes.append(f"{path}: uses the glTF extension {', '.join(ignored)}, which tap3d does "
                     "not read; rendered without it")
    materials, images, infos = _materials(reader, notes, images)
    verts, faces, uvs, colors, slots, count, skipped = [], [], [], [], [], 0, set()
    for mesh_index, world in _instances(gltf):
        for primitive in gltf.meshes[mesh_index].primitives:
            mode = 4 if primitive.mode is None else primitive.mode
            if mode not in (4, 5, 6):
                skipped.add(mode)
                continue
            slot = len(materials) - 1 if primitive.material is None else primitive.material
            ext = (primitive.extensions or {}).get("KHR_draco_mesh_compression")
            if ext is not None:
                attributes, tri = _draco(reader, primitive, ext)
            else:
                attributes = {name: reader.accessor(getattr(primitive.attributes, name))
                              for name in ("POSITION", "COLOR_0", "TEXCOORD_0", "TEXCOORD_1")
                              if getattr(primitive.attributes, name, None) is not None}
                if "POSITION" not in attributes:
                    continue
                n = len(attributes["POSITION"])
                indices = reader.accessor(primitive.indices).reshape(-1).astype(np.int64) \
                    if primitive.indices is not None else np.arange(n)
                tri = _triangles(indices, mode)
            position = attributes["POSITION"].astype(np.float64)[:, :3]
            moved = position @ world[:3, :3].T + world[:3, 3]
            if np.linalg.det(world[:3, :3]) < 0:  # a mirror: front faces turn clockwise
                tri = tri[:, [0, 2, 1]]
            n = len(moved)
            info = infos[slot] if materials[slot].image is not None else None
            uv = attributes.get(f"TEXCOORD_{getattr(info, 'texCoord', 0) or 0}") \
                if info is not None else None
            ext_uv = ((info.extensions or {}).get("KHR_texture_transform") or {}) \
                if info is not None else {}
            if "texCoord" in ext_uv:
                uv = attributes.get(f"TEXCOORD_{ext_uv['texCoord']}")
            if info is not None and uv is None:
                notes.append(f"{path}: a primitive of mesh {mesh_index} has no texture "
                             "coordinates for its base colour texture; the factor colour is "
                             "used")
                uv_values = np.zeros((n, 2), np.float32)
                slot_used = len(materials)
                materials.append(GltfMaterial(materials[slot].factor, None))
            else:
                uv_values = np.zeros((n, 2), np.float32) if uv is None else \
                    _texture_transform(uv[:, :2].astype(np.float32), info)
                slot_used = slot
            color = attributes.get("COLOR_0")
            color = np.ones((n, 4), np.float32) if color is None else np.concatenate(
                [color.astype(np.float32)[:, :4], np.ones((n, 4 - min(color.shape[1], 4)),
                                                          np.float32)], 1)
            verts.append(moved)
            faces.append(tri + count)
            uvs.append(uv_values)
            colors.append(color)
            slots.append(np.full(len(tri), slot_used, np.int64))
            count += n
    if skipped:
        notes.append(f"{path}: primitives of mode {sorted(skipped)} (points or lines) are not "
                     "rendered")
    if not faces:
        raise MeshError(path, "no triangles in the scene")
    return GltfScene(np.concatenate(verts), np.concatenate(faces), np.concatenate(uvs),
                     np.concatenate(colors), np.concatenate(slots), materials, images, notes)
