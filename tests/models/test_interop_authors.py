"""The TAP authors' whole pre-training model and all four backbones, both ways, strictly.

The authors' state dicts here are written from the module definitions of wangzy22/TAP (names and
shapes only, random values): ``openpoints/models/backbone/{pointmlp,dgcnn,pointnetv2,
transformer}.py`` (their ``*GenEncoder``), ``openpoints/models/generation/view_transformer.py``
(``ViewTransformer``: ``pad_memory``, timm ``Mlp`` ``feat_mlp``/``query_mlp``,
``BasicTransformerBlock`` ``attn1``/``attn2`` = ``CrossAttention`` with bias-free ``to_q``,
``to_k``, ``to_v`` of ``heads x dim_head`` and ``to_out.0``, ``ff.net.0.proj`` GEGLU and
``ff.net.2``, ``norm1``-``norm3``) and ``view_decoder.py`` (``ViewDecoder``: ``layer1``-``layer4``
of ``ConvTranspose2d``, weights ``(in, out, k, k)``), with the widths of their
``cfgs/shapenet/*_pretrain.yaml``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch
import yaml
import zarr

from tap3d.train.weights import WeightsError, load_backbone_weights
from tap3d.evaluate.generate import generate
from tap3d.train.weights import build_model, export_model, init_model, load_model_weights
from tap3d.models import TAPModel, make_backbone
from tap3d.models.openpoints import (NamingError, backbone_from_openpoints,
                                     backbone_to_openpoints, model_from_openpoints,
                                     model_to_openpoints)
from tap3d.train import load_config, train
from tap3d.train import FinetuneConfig
from tap3d.train.checkpoint import load_checkpoint, save_checkpoint
from tap3d.train.config import model_config
from tap3d.train.finetune import build_classifier

from helpers import ROOT, tap_cli
from test_interop import authors_pointmlp_state

CONFIGS = {"pointmlp": "tap-public.yaml", "dgcnn": "tap-dgcnn.yaml",
           "pointnet2": "tap-pointnet2.yaml", "transformer": "tap-transformer.yaml"}


class _Writer:
    """Random tensors of given shapes under given names."""

    def __init__(self, seed: int):
        self.state, self.g = {}, torch.Generator().manual_seed(seed)

    def tensor(self, name, *shape, scale=1.0):
        self.state[name] = torch.randn(*shape, generator=self.g) * scale

    def linear(self, name, cin, cout, bias=True, kernel=()):
        # variance-preserving scale: random models stay finite through every layer
        self.tensor(f"{name}.weight", cout, cin, *kernel, scale=cin ** -0.5)
        if bias:
            self.tensor(f"{name}.bias", cout)

    def norm(self, name, c, batch=True):
        self.state[f"{name}.weight"] = torch.rand(c, generator=self.g) + 0.5
        self.tensor(f"{name}.bias", c)
        if batch:
            self.tensor(f"{name}.running_mean", c)
            self.state[f"{name}.running_var"] = torch.rand(c, generator=self.g) + 0.5
            self.state[f"{name}.num_batches_tracked"] = torch.tensor(7)


def authors_dgcnn(in_channels=4, channels=64, embed=1024, seed=0) -> dict:
    """``DGCNNGenEncoder`` (n_blocks 5, conv edge): ``head`` GraphConv(4 -> 64), ``backbone``
    of 3 DynConv (64 -> 64, 64 -> 128, 128 -> 256), each EdgeConv a conv-norm-act Conv2d of
    ``2 in`` channels without bias; ``fusion_block`` Conv1d(512 -> 1024) + BN."""
    w = _Writer(seed)
    widths = [(in_channels, channels), (channels, channels), (channels, 2 * channels),
              (2 * channels, 4 * channels)]
    for i, (cin, cout) in enumerate(widths):
        name = "head.gconv.nn" if i == 0 else f"backbone.{i - 1}.gconv.nn"
        w.linear(f"{name}.0", 2 * cin, cout, bias=False, kernel=(1, 1))
        w.norm(f"{name}.1", cout)
    w.linear("fusion_block.0", sum(c for _, c in widths), embed, bias=False, kernel=(1,))
    w.norm("fusion_block.1", embed)
    return w.state


def authors_pointnet2(in_channels=4, mlps=((64, 64, 128), (128, 128, 256), (256, 512, 1024)),
                      seed=0) -> dict:
    """``PointNet2GenEncoder``: per stage one ``LocalAggregation`` ``ConvPool`` of Conv2d +
    BN layers (no bias), the first reading ``3 + C`` channels (``feature_type: dp_fj``)."""
    w = _Writer(seed)
    cin = in_channels
    for i, mlp in enumerate(mlps):
        channels = [cin + 3, *mlp]
        for j, (a, b) in enumerate(zip(channels, channels[1:])):
            name = f"SA_modules.{i}.local_aggregations.0.SA_CONFIG_operator.convs.{j}"
            w.linear(f"{name}.0", a, b, bias=False, kernel=(1, 1))
            w.norm(f"{name}.1", b)
        cin = mlp[-1]
    return w.state


def authors_transformer(trans=384, encoder=256, depth=12, seed=0) -> dict:
    """``PointTransformerGenEncoder``: ``Encoder`` first_conv Conv1d(3, 128) BN ReLU
    Conv1d(128, 256), second_conv Conv1d(512, 512) BN ReLU Conv1d(512, encoder_dims) (all with
    the Conv1d default bias), ``reduce_dim``, ``cls_token``/``cls_pos`` (1, 1, trans),
    ``pos_embed`` Linear(3, 128) GELU Linear(128, trans), ``blocks.blocks`` of timm-style
    blocks (``attn.qkv`` without bias, ``mlp`` ratio 4), ``norm``."""
    w = _Writer(seed)
    w.linear("encoder.first_conv.0", 3, 128, kernel=(1,))
    w.norm("encoder.first_conv.1", 128)
    w.linear("encoder.first_conv.3", 128, 256, kernel=(1,))
    w.linear("encoder.second_conv.0", 512, 512, kernel=(1,))
    w.norm("encoder.second_conv.1", 512)
    w.linear("encoder.second_conv.3", 512, encoder, kernel=(1,))
    w.linear("reduce_dim", encoder, trans)
    w.tensor("cls_token", 1, 1, trans)
    w.tensor("cls_pos", 1, 1, trans)
    w.linear("pos_embed.0", 3, 128)
    w.linear("pos_embed.2", 128, trans)
    for k in range(depth):
        block = f"blocks.blocks.{k}"
        w.norm(f"{block}.norm1", trans, batch=False)
        w.linear(f"{block}.attn.qkv", trans, 3 * trans, bias=False)
        w.linear(f"{block}.attn.proj", trans, trans)
        w.norm(f"{block}.norm2", trans, batch=False)
        w.linear(f"{block}.mlp.fc1", trans, 4 * trans)
        w.linear(f"{block}.mlp.fc2", 4 * trans, trans)
    w.norm("norm", trans, batch=False)
    return w.state


def authors_view_transformer(in_channels=1024, feat=256, depth=6, per_head=32, seed=0) -> dict:
    """``ViewTransformer``; ``channels_per_head`` is both the head count and the head width."""
    w = _Writer(seed)
    w.state["pad_memory"] = torch.zeros(feat)
    w.linear("feat_mlp.fc1", in_channels + 3, in_channels + 3)  # timm Mlp: hidden = input
    w.linear("feat_mlp.fc2", in_channels + 3, feat)
    w.linear("query_mlp.fc1", 8, 8)  # point_grid 3 + direction_norm 3 + query_pos 2
    w.linear("query_mlp.fc2", 8, feat)
    inner = per_head * per_head
    for k in range(depth):
        block = f"transformer.{k}"
        for attn in ("attn1", "attn2"):
            for part in ("to_q", "to_k", "to_v"):
                w.linear(f"{block}.{attn}.{part}", feat, inner, bias=False)
            w.linear(f"{block}.{attn}.to_out.0", inner, feat)
        w.linear(f"{block}.ff.net.0.proj", feat, 2 * 4 * feat)  # GEGLU(dim, 4 dim)
        w.linear(f"{block}.ff.net.2", 4 * feat, feat)
        for norm in ("norm1", "norm2", "norm3"):
            w.norm(f"{block}.{norm}", feat, batch=False)
    return w.state


def authors_view_decoder(in_channels=256, out_channels=3, seed=0) -> dict:
    """``ViewDecoder``: ConvTranspose2d weights are ``(in, out, k, k)``."""
    w = _Writer(seed)
    channels = [in_channels, in_channels // 2, in_channels // 4, in_channels // 8, out_channels]
    for i in range(4):
        kernel = 5 if i == 0 else 3
        w.tensor(f"layer{i + 1}.0.weight", channels[i], channels[i + 1], kernel, kernel,
                 scale=channels[i] ** -0.5)
        w.tensor(f"layer{i + 1}.0.bias", channels[i + 1])
    return w.state


def authors_encoder(name: str, **widths) -> dict:
    return {"pointmlp": authors_pointmlp_state, "dgcnn": authors_dgcnn,
            "pointnet2": authors_pointnet2, "transformer": authors_transformer}[name](**widths)


def authors_model(encoder: dict, in_channels: int, **generator) -> dict:
    """A ``ViewGenBase`` state dict: ``encoder.``, ``generator.``, ``decoder.``."""
    view = authors_view_transformer(in_channels, **generator)
    decoder = authors_view_decoder(view["feat_mlp.fc2.weight"].shape[0])
    return {**{f"encoder.{k}": v for k, v in encoder.items()},
            **{f"generator.{k}": v for k, v in view.items()},
            **{f"decoder.{k}": v for k, v in decoder.items()}}


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b) or set(a) == set(b)
    for key in a:
        assert a[key].shape == b[key].shape and torch.equal(a[key], b[key]), key


def _flat(value: torch.Tensor) -> torch.Tensor:
    return value.flatten(1) if value.dim() > 2 and value.shape[2:].numel() == 1 else value


@pytest.mark.parametrize("name", ["pointmlp", "dgcnn", "pointnet2", "transformer"])
def test_authors_backbones_convert_both_ways_strictly(name):
    """Their encoder at their widths -> tap3d's backbone at its defaults (every entry, every
    shape, the same numbers) -> their names again, unchanged; and tap3d -> theirs -> tap3d."""
    theirs = authors_encoder(name)
    found, ours = backbone_from_openpoints(theirs)
    assert found == name
    model = make_backbone(name)
    model.load_state_dict(ours, strict=True)
    assert set(ours) == set(model.state_dict())
    assert sorted(v.numel() for v in ours.values()) == sorted(v.numel() for v in theirs.values())
    _same(backbone_to_openpoints(name, model.state_dict()), theirs)
    torch.manual_seed(1)
    own = make_backbone(name, embed_dim=8).state_dict()
    _same(backbone_from_openpoints(backbone_to_openpoints(name, own), name)[1], own)


def test_tap3d_computes_dgcnn_edges_as_the_authors_weights_say():
    """The EdgeConv weight keeps the authors' input order [x_i, x_j - x_i]: tap3d's layer on
    one point whose neighbours are all itself is BN(W[:, :C] x) (the edge half sees zeros)."""
    theirs = authors_dgcnn(channels=8, embed=128)
    model = make_backbone("dgcnn", embed_dim=8).eval()
    model.load_state_dict(backbone_from_openpoints(theirs, "dgcnn")[1])
    x = torch.randn(1, 1, 4)
    edge = model.edges[0]
    got = edge(x, torch.zeros(1, 1, 1, dtype=torch.long))[0, 0]
    weight = _flat(theirs["head.gconv.nn.0.weight"])[:, :4]
    norm = {k: theirs[f"head.gconv.nn.1.{k}"] for k in ("weight", "bias", "running_mean",
                                                           "running_var")}
    linear = x[0, 0] @ weight.T
    expected = (linear - norm["running_mean"]) / torch.sqrt(norm["running_var"] + 1e-5) * \
        norm["weight"] + norm["bias"]
    torch.testing.assert_close(got, torch.nn.functional.leaky_relu(expected, 0.2))


@pytest.mark.parametrize("name", ["pointmlp", "dgcnn", "pointnet2", "transformer"])
def test_authors_whole_model_converts_both_ways_strictly(name):
    """Their ViewGenBase at their public widths loads strictly into the TAPModel of the
    matching configs/tap-*.yaml, and converts back to the same state dict (pad_memory zeros)."""
    encoder = authors_encoder(name)
    channels = 384 if name == "transformer" else 1024
    theirs = authors_model(encoder, channels)
    if name == "pointmlp":  # their Photograph module: 18,649,172 parameters with pad_memory
        assert sum(v.numel() for k, v in theirs.items() if k.startswith("generator.")) == \
            18_649_172
    found, ours = model_from_openpoints(theirs)
    assert found == name
    config = load_config(os.path.join(ROOT, "configs", CONFIGS[name]))
    assert (config.backbone, config.query, config.photograph_memory_norm,
            config.photograph_output_norm) == (name, "tap", False, False)
    model = TAPModel(model_config(config, 224, "perspective"))
    model.load_state_dict(ours, strict=True)
    _same(model_to_openpoints(model.state_dict(), name), theirs)


def test_keys_that_map_nowhere_are_errors_that_list_them():
    small = authors_model(authors_pointmlp_state(embed=8), 128, feat=32, depth=1, per_head=4)
    with pytest.raises(NamingError, match=r"generator\.: 1 keys .*transformer\.0\.attn3\.x"):
        model_from_openpoints({**small, "generator.transformer.0.attn3.x": torch.zeros(1)})
    with pytest.raises(NamingError, match=r"outside encoder.*prediction\.head\.weight"):
        model_from_openpoints({**small, "prediction.head.weight": torch.zeros(1)})
    with pytest.raises(NamingError, match="pad_memory is not zero"):
        model_from_openpoints({**small, "generator.pad_memory": torch.ones(32)})
    # tap3d's own Photograph module (ray queries, extra LayerNorms, q/k/v biases) has no
    # counterpart in theirs
    model = TAPModel(model_config(load_config(None, embed_dim=8, photograph_dim=32), 64,
                                  "perspective"))
    with pytest.raises(NamingError) as error:
        model_to_openpoints(model.state_dict(), "pointmlp")
    for key in ("blocks.0.norm_memory.weight", "photograph.: ", "norm.weight",
                "blocks.1.cross_attention.to_q.bias", "query_embed.0.weight is (32, 72)"):
        assert key in str(error.value), key


def _small_config(tmp_path) -> str:
    """The authors' architecture at small widths (PointMLP 8, Photograph 1 x 32, 4 heads of 4)
    as a tap3d YAML config."""
    settings = {"backbone": "pointmlp", "embed_dim": 8, "photograph_dim": 32,
                "photograph_depth": 1, "photograph_heads": 4, "photograph_head_dim": 4,
                "photograph_qkv_bias": False, "photograph_memory_hidden": 131,
                "photograph_memory_norm": False, "photograph_output_norm": False,
                "photograph_dropout": 0.1, "query": "tap", "generator_factor": 32,
                "batch_size": 1, "views_per_sample": 3, "max_steps": 1, "lr": 1e-7,
                "min_lr": 1e-8, "device": "cpu", "eval_objects": 0, "checkpoint_every": 1,
                "sample_every": 100, "log_every": 1}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


@pytest.fixture(scope="module")
def duck_and_mug(duck_and_mug_meshes, make_dataset):
    """The duck (textured) and the mug: 3 views of 64 x 64, 1024 points."""
    return make_dataset("authors", duck_and_mug_meshes, views=3, image_size=64, points=1024,
                        shard_size=2)


@pytest.mark.slow
def test_authors_ckpt_latest_loads_with_init_exports_and_generates(tmp_path, duck_and_mug):
    """Their ckpt_latest (DDP prefixes) and clean file through ``tap-cli train --init``, the run
    back to their layout (``export_model``), and ``tap-cli generate`` on their checkpoint
    (about 60 s on 2 cores: two CLI runs)."""
    theirs = authors_model(authors_pointmlp_state(embed=8), 128, feat=32, depth=1, per_head=4)
    ckpt = tmp_path / "tap_ckpt_latest.pth"  # as their save_checkpoint writes it, under DDP
    torch.save({"model": {f"module.{k}": v for k, v in theirs.items()}, "optimizer": {},
                "scheduler": {}, "epoch": 99, "best_val": 0.01}, ckpt)
    clean = tmp_path / "tap_clean.pth"
    torch.save({"model": {k[len("encoder."):]: v for k, v in theirs.items()
                          if k.startswith("encoder.")}}, clean)
    _, ours = model_from_openpoints(theirs)
    config = _small_config(tmp_path)

    # --init: one step at lr 1e-7 from their weights (the whole model, or the encoder alone)
    for source, whole in ((ckpt, True), (clean, False)):
        run = tmp_path / f"run-{whole}"
        if whole:
            done = tap_cli("train", duck_and_mug, "-o", str(run), "--config", config, "--init",
                           str(source), "--quiet")
            assert done.returncode == 0, done.stderr[-3000:]
        else:
            train(duck_and_mug, str(run), load_config(config, init=str(source)), progress=False)
        state = load_checkpoint(run / "checkpoints" / "last.pt")
        assert state["step"] == 1 and state["config"]["init"] == str(source)
        params = dict(TAPModel(model_config(load_config(config), 64, "perspective"))
                      .named_parameters())
        for key in params:
            near = (state["model"][key] - ours[key]).abs().max() < 1e-5
            assert near == (whole or key.startswith("backbone.")), key

    # the run exports in their ckpt layout: their keys and shapes
    export_model(tmp_path / "run-True", tmp_path / "back.pth")
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert set(back) == {"model", "optimizer", "scheduler", "epoch", "best_val"}
    assert back["epoch"] == 0  # one step of a two-object epoch: no epoch finished
    assert {k: v.shape for k, v in back["model"].items()} == {k: v.shape for k, v in theirs.items()}

    # generate: their checkpoint (architecture read off the weights) and a tap3d checkpoint of
    # the same weights with the explicit config paint the same views
    out, sheet = tmp_path / "gen.zarr", tmp_path / "sheet.png"
    done = tap_cli("generate", str(ckpt), duck_and_mug, "-o", str(out), "--sheet", str(sheet),
                   "--device", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    group = zarr.open_group(str(out), mode="r")
    generated = group["generated"]
    assert generated.shape == (2, 3, 64, 64, 3) and generated.dtype == np.float32
    assert generated.metadata.dimension_names == ("object", "view", "y", "x", "channel")
    values = generated[:]
    assert 0 <= values.min() and values.max() <= 1 and values.std() > 0
    dataset = zarr.open_group(duck_and_mug, mode="r")
    assert list(group["object_id"][:]) == list(dataset["object_id"][:])
    from PIL import Image

    assert Image.open(sheet).size == (3 * 64, 2 * (2 * 64 + 4) - 4)
    tap3d_ckpt = tmp_path / "tap3d"
    save_checkpoint(str(tap3d_ckpt / "checkpoints"), {
        "model": ours, "step": 0, "config": dataclasses.asdict(load_config(config)),
        "model_args": dataclasses.asdict(model_config(load_config(config), 64, "perspective"))})
    generate(tap3d_ckpt, duck_and_mug, tmp_path / "g2.zarr", device="cpu")
    np.testing.assert_allclose(zarr.open_group(str(tmp_path / "g2.zarr"))["generated"][:],
                               values, rtol=0, atol=1e-6)


def test_backbone_checkpoint_reads_both_of_their_files(tmp_path):
    """--backbone-checkpoint's loader: their ckpt_latest (generator and decoder left out) and
    their clean file give the same backbone; a tap3d backbone file of the old layout (no format,
    no backbone_args) and a Transformer file from before its group-embedding biases still read."""
    for name in ("dgcnn", "transformer"):
        encoder = authors_encoder(name, seed=3)
        full = authors_model(encoder, 384 if name == "transformer" else 1024, feat=32, depth=1,
                             per_head=4)
        torch.save({"model": full, "optimizer": {}, "epoch": 3}, tmp_path / "latest.pth")
        torch.save({"model": encoder}, tmp_path / "clean.pth")
        a = load_backbone_weights(tmp_path / "latest.pth")
        b = load_backbone_weights(tmp_path / "clean.pth")
        assert a.backbone == b.backbone == name and a.dropped == ["decoder", "generator"]
        _same(a.build().state_dict(), b.build().state_dict())
    # a backbone file without its constructor arguments: they are read off the tensors' shapes
    saved = make_backbone("transformer", embed_dim=8, depth=2).state_dict()
    torch.save({"format": "tap3d.backbone", "version": 1, "backbone": "transformer",
                "state_dict": saved, "config": {}, "step": 4}, tmp_path / "bare.pt")
    weights = load_backbone_weights(tmp_path / "bare.pt")
    assert weights.kwargs == {"embed_dim": 8, "heads": 6, "depth": 2}
    _same(weights.build().state_dict(), saved)
    with pytest.raises(WeightsError, match="holds a transformer backbone, not dgcnn"):
        load_backbone_weights(tmp_path / "bare.pt", "dgcnn")
    # fine-tuning starts from their ckpt_latest (the last one written above: the Transformer)
    classifier, config = build_classifier(
        FinetuneConfig(backbone_checkpoint=str(tmp_path / "latest.pth"), embed_dim=8), 5)
    assert config.backbone == "transformer" and config.embed_dim == 64
    _same(classifier.backbone.state_dict(), b.build().state_dict())


def test_init_model_and_build_model_are_strict(tmp_path):
    theirs = authors_model(authors_pointmlp_state(embed=8), 128, feat=32, depth=1, per_head=4)
    torch.save({"model": theirs}, tmp_path / "c.pth")
    weights = load_model_weights(tmp_path / "c.pth")
    model, config = build_model(weights, 64)
    assert (config.photograph_heads, config.photograph_head_dim, config.photograph_memory_hidden,
            config.embed_dim) == (4, 4, 131, 8)
    other = TAPModel(model_config(load_config(
        None, embed_dim=8, photograph_dim=32, photograph_depth=1, photograph_heads=4,
        photograph_head_dim=4, photograph_qkv_bias=False, photograph_memory_hidden=131,
        query="tap"), 64, "perspective"))  # tap3d's LayerNorms on
    with pytest.raises(WeightsError, match=r"c\.pth: does not fit the model: .*missing keys: "
                                           r".*norm_memory"):
        init_model(other, tmp_path / "c.pth")
    assert isinstance(model, TAPModel)


def test_generate_writes_every_view_of_every_object(tmp_path, duck_and_mug):
    """In process (the fast twin of the CLI test): their checkpoint paints one float32 image per
    stored view; the sheet puts each object's generated views over its targets."""
    theirs = authors_model(authors_pointmlp_state(embed=8, seed=2), 128, feat=32, depth=1,
                           per_head=4, seed=2)
    torch.save({"model": theirs, "epoch": 5}, tmp_path / "x_ckpt_best.pth")
    result = generate(tmp_path / "x_ckpt_best.pth", duck_and_mug, tmp_path / "g.zarr",
                      tmp_path / "s.png", objects=[1], device="cpu")
    assert result["objects"] == 1 and result["origin"] == "openpoints"
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="r")
    generated = group["generated"][:]
    assert generated.shape == (1, 3, 64, 64, 3)
    # each stored view's camera gives another picture, and none is flat
    assert min(np.ptp(generated[0, v]) for v in range(3)) > 1e-3
    assert np.abs(generated[0, 0] - generated[0, 1]).max() > 1e-3
    assert list(group["object_index"][:]) == [1]
    assert group["object_id"][0] == zarr.open_group(duck_and_mug, mode="r")["object_id"][1]
    assert group.attrs["config"]["query"] == "tap"
    from PIL import Image

    sheet = np.asarray(Image.open(tmp_path / "s.png"))
    assert sheet.shape == (128, 192, 3)
    np.testing.assert_array_equal(sheet[:64, 64:128],
                                  np.round(generated[0, 1] * 255).astype(np.uint8))
    stored = zarr.open_group(duck_and_mug, mode="r")["rgb"][1, 2]
    np.testing.assert_array_equal(sheet[64:, 128:], stored)
    with pytest.raises(FileExistsError):
        generate(tmp_path / "x_ckpt_best.pth", duck_and_mug, tmp_path / "g.zarr", device="cpu")
