"""The TAP authors' own modules against tap3d's, on the same weights and inputs (CPU, ~1 min).

    .venv/bin/python benchmarks/authors_modules.py PATH/TO/wangzy22/TAP

PATH is a checkout of GitHub wangzy22/TAP; its module files are imported from there at run time
(nothing of it is stored in tap3d). Needs ``einops`` (their ``view_transformer.py`` imports it).
Their CUDA extensions and two third-party pieces are replaced by stand-ins written here:
farthest-point sampling by tap3d's (the same deterministic start, index 0), the CUDA
``grouping_operation`` by a gather, the CUDA ball query by tap3d's (nearest first; theirs keeps
the first hits in index order, which only differs when more than ``k`` points are in the ball),
timm's ``Mlp`` and ``DropPath`` by equivalents (``fc1``, GELU, ``fc2``; identity in eval).

Each check loads one model's weights into the other through :mod:`tap3d.models.openpoints`
(strictly) and prints the largest absolute difference of the outputs: their ``ViewTransformer``
+ ``ViewDecoder`` against tap3d's Photograph module + generator (``query: tap``, no extra
LayerNorms) at 2 x 32 and at the public 6 x 256, their query tokens against
:func:`tap3d.models.photograph.tap_queries`, and their ``PointMLPGenEncoder``,
``DGCNNGenEncoder`` (also in float64: float32 rounding flips near-tied neighbours of its
feature-space kNN), ``PointNet2GenEncoder`` and ``PointTransformerGenEncoder`` (tap3d's
grouping fed to theirs) against tap3d's backbones, in eval mode with non-trivial BatchNorm
statistics.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

STAND_INS = {
    "openpoints/__init__.py": "",
    "openpoints/models/__init__.py": "",
    "openpoints/models/backbone/__init__.py": "",
    "openpoints/models/generation/__init__.py": "",
    "openpoints/dataset/__init__.py": "",
    "openpoints/models/build.py": (
        "class _Registry:\n"
        "    def register_module(self):\n"
        "        return lambda cls: cls\n"
        "MODELS = _Registry()\n"),
    "openpoints/models/layers/__init__.py": (
        "from tap3d.geometry.pointops import farthest_point_sample as _fps\n"
        "def furthest_point_sample(xyz, count):\n"
        "    return _fps(xyz, count)\n"
        "fps = furthest_point_sample\n"
        "random_sample = three_interpolate = three_nn = three_interpolation = None\n"
        "gather_operation = create_linearblock = create_grouper = SubsampleGroup = None\n"
        "from .conv import create_convblock1d, create_convblock2d\n"
        "from .local_aggregation import LocalAggregation\n"),
    "openpoints/models/layers/group.py": (
        "import copy\n"
        "import torch\n"
        "from tap3d.geometry.pointops import ball_query as _ball_query\n"
        "def grouping_operation(features, idx):\n"
        "    B, C, _ = features.shape\n"
        "    flat = idx.long().reshape(B, 1, -1).expand(-1, C, -1)\n"
        "    return torch.gather(features, 2, flat).reshape(B, C, *idx.shape[1:])\n"
        "class QueryAndGroup(torch.nn.Module):\n"
        "    def __init__(self, radius, nsample, relative_xyz=True, normalize_dp=False, **kw):\n"
        "        super().__init__()\n"
        "        self.radius, self.nsample, self.normalize_dp = radius, nsample, normalize_dp\n"
        "    def forward(self, query_xyz, support_xyz, features=None):\n"
        "        idx = _ball_query(query_xyz, support_xyz, self.radius, self.nsample)\n"
        "        dp = grouping_operation(support_xyz.transpose(1, 2).contiguous(), idx)\n"
        "        dp = dp - query_xyz.transpose(1, 2).unsqueeze(-1)\n"
        "        if self.normalize_dp:\n"
        "            dp = dp / self.radius\n"
        "        return dp, None if features is None else grouping_operation(features, idx)\n"
        "def create_grouper(args):\n"
        "    args = copy.deepcopy(dict(args)); args.pop('NAME', None)\n"
        "    return QueryAndGroup(args.pop('radius', 0.1), args.pop('nsample', 20), **args)\n"),
    "timm/__init__.py": "",
    "timm/models/__init__.py": "",
    "timm/models/vision_transformer.py": (
        "from torch import nn\n"
        "class Mlp(nn.Module):\n"
        "    def __init__(self, in_features, hidden_features=None, out_features=None,\n"
        "                 act_layer=nn.GELU, drop=0.):\n"
        "        super().__init__()\n"
        "        hidden = hidden_features or in_features\n"
        "        self.fc1, self.act = nn.Linear(in_features, hidden), act_layer()\n"
        "        self.fc2 = nn.Linear(hidden, out_features or in_features)\n"
        "    def forward(self, x):\n"
        "        return self.fc2(self.act(self.fc1(x)))\n"),
    "timm/models/layers/__init__.py": (
        "from torch import nn\n"
        "class DropPath(nn.Identity):\n"
        "    def __init__(self, p=0.):\n"
        "        super().__init__()\n"),
    "torch_scatter/__init__.py": "scatter = None\n",
    "easydict/__init__.py": (
        "class EasyDict(dict):\n"
        "    def __getattr__(self, key):\n"
        "        try:\n"
        "            return self[key]\n"
        "        except KeyError:\n"
        "            raise AttributeError(key) from None\n"
        "    __setattr__ = dict.__setitem__\n"),
}

#: Their files imported as they are.
THEIR_FILES = ["openpoints/models/generation/view_transformer.py",
               "openpoints/models/generation/view_decoder.py",
               "openpoints/dataset/data_util.py",
               "openpoints/models/backbone/transformer.py",
               "openpoints/models/backbone/pointmlp.py",
               "openpoints/models/backbone/dgcnn.py",
               "openpoints/models/backbone/pointnetv2.py",
               "openpoints/models/layers/graph_conv.py", "openpoints/models/layers/knn.py",
               "openpoints/models/layers/conv.py", "openpoints/models/layers/activation.py",
               "openpoints/models/layers/norm.py",
               "openpoints/models/layers/local_aggregation.py"]


def stage(repo: str, folder: str) -> None:
    """Their files and the stand-ins as importable packages under ``folder``."""
    for name, text in STAND_INS.items():
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    for name in THEIR_FILES:
        with open(os.path.join(repo, name)) as f:
            text = f.read()
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    with open(os.path.join(repo, "openpoints/models/layers/group.py")) as f:  # their function
        function = re.search(r"^def get_aggregation_feautres.*?^    return fj\n", f.read(),
                             re.S | re.M).group(0)
    with open(os.path.join(folder, "openpoints/models/layers/group.py"), "a") as f:
        f.write(function)


def _statistics(model) -> None:
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)


def run() -> list[tuple[str, float]]:
    import torch

    from openpoints.models.generation.view_decoder import ViewDecoder
    from openpoints.models.generation.view_transformer import ViewTransformer
    from tap3d.models import TAPModel, make_backbone
    from tap3d.models.openpoints import backbone_to_openpoints, model_from_openpoints
    from tap3d.models.photograph import tap_queries, tap_view_rotation
    from tap3d.geometry.pointops import ball_query, farthest_point_sample, gather
    from tap3d.train import load_config
    from tap3d.train.config import model_config

    torch.manual_seed(0)
    rows = []
    B, V, M, N, C = 2, 3, 64, 1024, 128
    x = torch.randn(B, N, 3)
    x = x / x.norm(dim=-1).amax(1, keepdim=True)[..., None]
    features = torch.cat([x, x[..., 2:3] - x[..., 2:3].amin(1, keepdim=True)], -1)
    for dim, depth, heads in ((32, 2, 4), (256, 6, 32)):
        theirs = ViewTransformer(C, dim, depth, heads, 0.1, 200, 224, 32).eval()
        decoder = ViewDecoder(dim, 3).eval()
        config = load_config(None, embed_dim=8, photograph_dim=dim, photograph_depth=depth,
                             photograph_heads=heads, photograph_head_dim=heads,
                             photograph_qkv_bias=False, photograph_memory_hidden=C + 3,
                             photograph_memory_norm=False, photograph_output_norm=False,
                             photograph_dropout=0.1, query="tap", up_axis=2)
        ours = TAPModel(model_config(config, 224, "perspective")).eval()
        state = {**{f"encoder.{k}": v for k, v in
                    backbone_to_openpoints("pointmlp", ours.backbone.state_dict()).items()},
                 **{f"generator.{k}": v for k, v in theirs.state_dict().items()},
                 **{f"decoder.{k}": v for k, v in decoder.state_dict().items()}}
        ours.load_state_dict(model_from_openpoints(state)[1], strict=True)
        memory, xyz = torch.randn(B, M, C), torch.rand(B, M, 3) * 2 - 1
        q, _ = torch.linalg.qr(torch.randn(B, V, 3, 3))
        w2c = torch.eye(4).repeat(B, V, 1, 1)
        w2c[..., :3, :3] = q * torch.linalg.det(q)[..., None, None].sign()
        w2c[..., :3, 3] = torch.randn(B, V, 3)
        K = torch.eye(3).repeat(B, V, 1, 1)
        view = tap_view_rotation(w2c)  # their `view`: view_point = view @ world_point
        with torch.no_grad():
            a = decoder(theirs(memory, xyz, x, view))
            b = ours.generator(ours.photograph(memory, xyz, K, w2c, x))
            qa = theirs.build_query(x, view)
            qb = tap_queries(x, w2c, 7, 224, up_axis=2).reshape(B * V, 49, 8)
        rows += [(f"query tokens ({depth} x {dim})", float((qa - qb).abs().max())),
                 (f"Photograph + generator, {depth} x {dim}, {heads} heads of {heads}",
                  float((a - b).abs().max()))]

    from openpoints.models.backbone import dgcnn, pointmlp, pointnetv2, transformer
    from easydict import EasyDict

    encoders = {
        "pointmlp": lambda: pointmlp.PointMLPGenEncoder(
            in_channels=4, embed_dim=64, groups=1, res_expansion=1.0, activation="relu",
            bias=False, use_xyz=False, normalize="anchor", dim_expansion=[2] * 4,
            pre_blocks=[2] * 4, pos_blocks=[2] * 4, k_neighbors=[24] * 4, reducers=[2] * 4),
        "dgcnn": lambda: dgcnn.DGCNNGenEncoder(
            in_channels=4, channels=64, n_blocks=5, conv="edge", k=20, norm_args={"norm": "bn"},
            act_args={"act": "leakyrelu", "negative_slope": 0.2}),
        "pointnet2": lambda: pointnetv2.PointNet2GenEncoder(
            in_channels=4, width=None, layers=3, use_res=False, strides=[2, 4, 2],
            mlps=[[[64, 64, 128]], [[128, 128, 256]], [[256, 512, 1024]]],
            radius=[0.2, 0.4, 0.2], num_samples=[32, 64, 32], sampler="fps",
            aggr_args=EasyDict(NAME="convpool", feature_type="dp_fj", anisotropic=False,
                               reduction="max"),
            group_args=EasyDict(NAME="ballquery", use_xyz=True, normalize_dp=False),
            conv_args=EasyDict(order="conv-norm-act"), act_args=EasyDict(act="relu"),
            norm_args=EasyDict(norm="bn")),
    }
    inputs = {"pos": x, "x": features.transpose(1, 2).contiguous()}
    for name, make in encoders.items():
        theirs, ours = make().eval(), make_backbone(name).eval()
        _statistics(ours)
        theirs.load_state_dict(backbone_to_openpoints(name, ours.state_dict()), strict=True)
        with torch.no_grad():
            a, b = theirs.forward_cls_feat(inputs)[0], ours(features)[0]
        rows.append((f"{name} encoder", float((a - b).abs().max())))
        if name == "dgcnn":
            with torch.no_grad():
                a = theirs.double().forward_cls_feat(
                    {k: v.double() for k, v in inputs.items()})[0]
                b = ours.double()(features.double())[0]
            rows.append(("dgcnn encoder, float64", float((a - b).abs().max())))

    class _Grouping(torch.nn.Module):  # replaced below by tap3d's grouping
        def __init__(self, *args):
            super().__init__()

    transformer.SubsampleGroup = _Grouping
    theirs, ours = transformer.PointTransformerGenEncoder().eval(), \
        make_backbone("transformer").eval()
    theirs.load_state_dict(backbone_to_openpoints("transformer", ours.state_dict()), strict=True)
    centres = gather(x, farthest_point_sample(x, 256))
    groups = gather(x, ball_query(centres, x, 0.1, 32)) - centres[:, :, None]
    theirs._modules.pop("group_divider")
    theirs.group_divider = lambda points: (groups.permute(0, 3, 1, 2), centres)
    with torch.no_grad():
        a, b = theirs.forward_cls_feat(x)[0], ours(x)[0]
    rows.append(("transformer encoder (tap3d's grouping)", float((a - b).abs().max())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", help="a checkout of GitHub wangzy22/TAP")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        stage(args.repo, folder)
        sys.path.insert(0, folder)
        print("| check | max abs difference |\n|---|---|")
        for name, value in run():
            print(f"| {name} | {value:.2e} |")


if __name__ == "__main__":
    main()
