"""State-dict names: tap3d <-> the TAP authors' code (openpoints, GitHub wangzy22/TAP), strictly.

Pure renaming of tensors (no file I/O): every key of the source must match one rule, and the
tensors come back unchanged except for the kernel dimensions of the authors' 1x1 convolutions
(tap3d's point-wise layers are ``nn.Linear`` on channels-last tensors: a ``(out, in)`` weight is
the authors' ``(out, in, 1)`` ``Conv1d`` or ``(out, in, 1, 1)`` ``Conv2d`` weight). A key that
matches no rule is an error listing every such key; renaming one way and back is the identity.

Backbones (the authors' ``*GenEncoder`` of ``openpoints/models/backbone/``, the module names of
their ``cfgs/shapenet/*_pretrain.yaml``):

- ``pointmlp``: ``embedding.net``, ``local_grouper_list.{i}.affine_alpha/beta``,
  ``pre_blocks_list.{i}.transfer.net``, ``{pre,pos}_blocks_list.{i}.operation.{j}.net{1,2}``.
- ``dgcnn``: ``head.gconv.nn.{0,1}`` (the static EdgeConv on xyz),
  ``backbone.{0,1,2}.gconv.nn.{0,1}`` (the dynamic ones), ``fusion_block.{0,1}``.
- ``pointnet2``: ``SA_modules.{i}.local_aggregations.0.SA_CONFIG_operator.convs.{j}.{0,1}``.
- ``transformer``: ``encoder.first_conv.{0,1,3}``, ``encoder.second_conv.{0,1,3}``,
  ``reduce_dim``, ``cls_token``, ``cls_pos``, ``pos_embed.{0,2}``,
  ``blocks.blocks.{k}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``.

The whole pre-training model (their ``ViewGenBase``): ``encoder.`` (the backbone),
``generator.`` (their Photograph module ``ViewTransformer``: ``pad_memory``, ``feat_mlp``,
``query_mlp``, ``transformer.{k}.{norm1,attn1,norm2,attn2,norm3,ff}``) and ``decoder.`` (their
``ViewDecoder``: ``layer{1..4}.0``) against tap3d's :class:`~tap3d.models.TAPModel`
``backbone.``, ``photograph.`` and ``generator.``. Their ``pad_memory`` is a parameter their
forward never reads (so it never receives a gradient and stays at its initial zeros); tap3d has
no counterpart: it is accepted when zero and written as zeros.
"""

from __future__ import annotations

import torch

from tap3d.models.backbones import REGISTRY
from tap3d.models.naming import NamingError, Rule, W, WB

__all__ = ["NamingError", "backbone_rules", "identify_backbone", "backbone_to_openpoints",
           "backbone_from_openpoints", "model_to_openpoints", "model_from_openpoints",
           "AUTHORS_PREFIXES"]

#: Top-level modules of the authors' ``ViewGenBase`` and tap3d's ``TAPModel``, in that order.
AUTHORS_PREFIXES = {"encoder": "backbone", "generator": "photograph", "decoder": "generator"}


def backbone_rules(name: str) -> list[Rule]:
    """The renaming rules of backbone ``name``: its registry entry's ``openpoints_rules``
    (:data:`tap3d.models.backbones.REGISTRY`)."""
    return list(REGISTRY[name].openpoints_rules)


def _photograph() -> list[Rule]:
    rules = [Rule("memory.0.{rest}", "feat_mlp.fc1.{rest}"),
             Rule("memory.2.{rest}", "feat_mlp.fc2.{rest}"),
             Rule("query_embed.0.{rest}", "query_mlp.fc1.{rest}"),
             Rule("query_embed.2.{rest}", "query_mlp.fc2.{rest}")]
    for ours, theirs in (("norm_self", "norm1"), ("self_attention", "attn1"),
                         ("norm_query", "norm2"), ("cross_attention", "attn2"),
                         ("norm_ff", "norm3"), ("feed_forward.proj", "ff.net.0.proj"),
                         ("feed_forward.out", "ff.net.2")):
        if ours.endswith("attention"):
            for part in ("to_q", "to_k", "to_v", "to_out.0"):  # q, k, v without bias
                rules.append(Rule(f"blocks.{{i}}.{ours}.{part}.{{rest}}",
                                   f"transformer.{{i}}.{theirs}.{part}.{{rest}}",
                                   rest=WB if part == "to_out.0" else W))
        else:
            rules.append(Rule(f"blocks.{{i}}.{ours}.{{rest}}",
                               f"transformer.{{i}}.{theirs}.{{rest}}"))
    return rules


#: The authors' ``ViewDecoder`` has four transposed convolutions (``layer1`` - ``layer4``):
#: tap3d's generator with ``factor`` 32 (``net.0``, ``net.2``, ``net.4``, ``net.6``).
_DECODER_RULES = [Rule(f"net.{2 * i}.{{rest}}", f"layer{i + 1}.0.{{rest}}") for i in range(4)]
_PHOTOGRAPH_RULES = _photograph()


def _rename(state: dict, rules: list[Rule], to_openpoints: bool, what: str) -> dict:
    out, unknown = {}, []
    for key, value in state.items():
        for rule in rules:
            renamed = rule.rename(key, value, to_openpoints)
            if renamed is not None:
                out[renamed[0]] = renamed[1]
                break
        else:
            unknown.append(key)
    if unknown:
        naming = "tap3d" if to_openpoints else "openpoints"
        raise NamingError(f"{len(unknown)} keys are not {what} entries in {naming} naming: "
                          f"{', '.join(unknown)}")
    return out


def _matches(state: dict, rules: list[Rule], naming: int) -> int:
    return sum(any(r.patterns[naming].fullmatch(k) for r in rules) for k in state)


def identify_backbone(state: dict, naming: str = "openpoints") -> str:
    """The backbone whose names every key of ``state`` has.

    Args:
        state: a backbone state dict (no ``encoder.``/``backbone.`` prefix).
        naming: ``openpoints`` or ``tap3d``.

    Returns:
        A :data:`tap3d.models.BACKBONES` name.

    Raises:
        NamingError: no backbone has every key; lists the keys the closest one lacks.
    """
    side = 1 if naming == "openpoints" else 0
    counts = {name: _matches(state, backbone_rules(name), side) for name in REGISTRY}
    for name, count in counts.items():
        if state and count == len(state):
            return name
    best = max(counts, key=counts.get)
    unknown = [k for k in state
               if not any(r.patterns[side].fullmatch(k) for r in backbone_rules(best))]
    raise NamingError(f"not a backbone state dict in {naming} naming; closest {best}, whose "
                      f"names {len(unknown)} keys are not: {', '.join(unknown[:50])}"
                      f"{', ...' if len(unknown) > 50 else ''}")


def backbone_to_openpoints(name: str, state: dict) -> dict:
    """tap3d backbone state dict -> the authors' ``*GenEncoder`` names (same tensors, 1x1
    kernel dimensions added to point-wise weights).

    Args:
        name: a :data:`tap3d.models.BACKBONES` name.
        state: tap3d names -> tensors.

    Raises:
        NamingError: keys that are not entries of that backbone (all listed).
        KeyError: unknown backbone name.
    """
    return _rename(state, backbone_rules(name), True, name)


def backbone_from_openpoints(state: dict, name: str | None = None) -> tuple[str, dict]:
    """The authors' backbone state dict -> ``(backbone name, tap3d state dict)``.

    Args:
        state: openpoints names -> tensors (no ``encoder.`` prefix).
        name: the backbone, or None to :func:`identify_backbone` it.

    Raises:
        NamingError: keys that are not entries of the backbone (all listed), or a convolution
            kernel that is not 1x1.
    """
    name = name or identify_backbone(state, "openpoints")
    return name, _rename(state, backbone_rules(name), False, name)


def _split(state: dict, prefixes) -> tuple[dict[str, dict], list[str]]:
    parts, unknown = {p: {} for p in prefixes}, []
    for key, value in state.items():
        head, _, tail = key.partition(".")
        if head in parts and tail:
            parts[head][tail] = value
        else:
            unknown.append(key)
    return parts, unknown


def _rename_modules(parts: dict[str, dict], plan, to_openpoints: bool) -> tuple[dict, list]:
    """Rename each top-level module of ``plan`` (``(source prefix, target prefix, rules,
    what)``); returns the renamed entries and the errors of the modules that failed."""
    out, errors = {}, []
    for source, target, rules, what in plan:
        try:
            renamed = _rename(parts[source], rules, to_openpoints, what)
        except NamingError as error:
            errors.append(f"{source}.: {error}")
            continue
        out.update({f"{target}.{k}": v for k, v in renamed.items()})
    return out, errors


def model_to_openpoints(state: dict, backbone: str) -> dict:
    """tap3d :class:`~tap3d.models.TAPModel` state dict -> the authors' ``ViewGenBase`` names.

    The model must have the authors' structure: ``query`` ``tap`` (their query MLP), no
    memory or output LayerNorm, q/k/v without bias, a x32 generator. Anything else leaves keys
    that map nowhere, and those are the error. ``generator.pad_memory`` is written as zeros.

    Args:
        state: ``backbone.*``, ``photograph.*``, ``generator.*`` tensors.
        backbone: the backbone's :data:`tap3d.models.BACKBONES` name.

    Raises:
        NamingError: keys that map nowhere (all listed), or no query MLP of the authors' shape.
    """
    parts, unknown = _split(state, ("backbone", "photograph", "generator"))
    if unknown:
        raise NamingError(f"{len(unknown)} keys are outside backbone., photograph. and "
                          f"generator.: {', '.join(unknown)}")
    out, errors = _rename_modules(parts, [
        ("backbone", "encoder", backbone_rules(backbone), backbone),
        ("photograph", "generator", _PHOTOGRAPH_RULES, "Photograph module"),
        ("generator", "decoder", _DECODER_RULES, "x32 generator")], True)
    query = parts["photograph"].get("query_embed.0.weight")
    if query is not None and tuple(query.shape) != (8, 8):
        errors.append(f"photograph.query_embed.0.weight is {tuple(query.shape)}, not the "
                      "authors' query MLP (8, 8) of query 'tap'")
    if errors:
        raise NamingError("; ".join(errors))
    width = parts["photograph"]["memory.2.weight"].shape[0]
    out["generator.pad_memory"] = torch.zeros(width, dtype=parts["photograph"][
        "memory.2.weight"].dtype)
    return out


def model_from_openpoints(state: dict) -> tuple[str, dict]:
    """The authors' ``ViewGenBase`` state dict -> ``(backbone name, TAPModel state dict)``.

    Args:
        state: ``encoder.*``, ``generator.*``, ``decoder.*`` tensors (``module.`` removed).

    Raises:
        NamingError: keys that map nowhere (all listed), or a non-zero ``pad_memory``.
    """
    parts, unknown = _split(state, AUTHORS_PREFIXES)
    if unknown:
        raise NamingError(f"{len(unknown)} keys are outside encoder., generator. and decoder.: "
                          f"{', '.join(unknown)}")
    pad = parts["generator"].pop("pad_memory", None)
    errors = []
    if pad is not None and bool(pad.any()):
        errors.append("generator.pad_memory is not zero (the authors' forward never reads it; "
                      "tap3d has no place for its values)")
    plan = [("generator", "photograph", _PHOTOGRAPH_RULES, "ViewTransformer"),
            ("decoder", "generator", _DECODER_RULES, "ViewDecoder")]
    name = None
    try:
        name = identify_backbone(parts["encoder"], "openpoints")
        plan.insert(0, ("encoder", "backbone", backbone_rules(name), name))
    except NamingError as error:
        errors.append(f"encoder.: {error}")
    out, more = _rename_modules(parts, plan, False)
    errors += more
    if errors:
        raise NamingError("; ".join(errors))
    return name, out
