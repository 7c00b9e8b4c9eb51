"""State-dict layouts of the official implementations, written from their documented key names.

These are independent of edge_mlp's module tree: if a module of ours is renamed or reshaped, the
official checkpoints would no longer load, and the tests built on these layouts fail.
"""

from __future__ import annotations

Layout = dict[str, tuple[int, ...]]


def _affine(prefix: str, dim: int) -> Layout:
    return {f"{prefix}.weight": (dim,), f"{prefix}.bias": (dim,)}


def _linear(prefix: str, out: int, inp: int, bias: bool = True, conv1x1: bool = False) -> Layout:
    shape = (out, inp, 1, 1) if conv1x1 else (out, inp)
    return {f"{prefix}.weight": shape, **({f"{prefix}.bias": (out,)} if bias else {})}


def as_mlp_layout(embed_dim: int, depths: tuple[int, ...], num_classes: int = 1000,
                  mlp_ratio: float = 4.0, patch_size: int = 4, in_chans: int = 3) -> Layout:
    """svip-lab/AS-MLP models/as_mlp.py (AS_MLP)."""
    keys: Layout = {"patch_embed.proj.weight": (embed_dim, in_chans, patch_size, patch_size),
                    "patch_embed.proj.bias": (embed_dim,), **_affine("patch_embed.norm", embed_dim)}
    for i, depth in enumerate(depths):
        dim = embed_dim * 2**i
        hidden = int(dim * mlp_ratio)
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}"
            keys |= _affine(f"{p}.norm1", dim) | _affine(f"{p}.norm2", dim)
            for conv in ("conv1", "conv2_1", "conv2_2", "conv3"):
                keys |= _linear(f"{p}.axial_shift.{conv}", dim, dim, conv1x1=True)
            keys |= _affine(f"{p}.axial_shift.norm1", dim) | _affine(f"{p}.axial_shift.norm2", dim)
            keys |= _linear(f"{p}.mlp.fc1", hidden, dim, conv1x1=True)
            keys |= _linear(f"{p}.mlp.fc2", dim, hidden, conv1x1=True)
        if i < len(depths) - 1:
            keys |= _linear(f"layers.{i}.downsample.reduction", 2 * dim, 4 * dim, bias=False, conv1x1=True)
            keys |= _affine(f"layers.{i}.downsample.norm", 4 * dim)
    final = embed_dim * 2 ** (len(depths) - 1)
    return keys | _affine("norm", final) | _linear("head", num_classes, final)


def cycle_mlp_layout(layers: tuple[int, ...], embed_dims: tuple[int, ...],
                     mlp_ratios: tuple[float, ...], num_classes: int = 1000) -> Layout:
    """ShoufaChen/CycleMLP cycle_mlp.py (CycleNet, all transitions True)."""
    keys: Layout = {"patch_embed.proj.weight": (embed_dims[0], 3, 7, 7),
                    "patch_embed.proj.bias": (embed_dims[0],)}
    idx = 0
    for i, depth in enumerate(layers):
        d = embed_dims[i]
        hidden = int(d * mlp_ratios[i])
        for j in range(depth):
            p = f"network.{idx}.{j}"
            keys |= _affine(f"{p}.norm1", d) | _affine(f"{p}.norm2", d)
            keys |= _linear(f"{p}.attn.mlp_c", d, d, bias=False)
            for sfc in ("sfc_h", "sfc_w"):
                keys |= _linear(f"{p}.attn.{sfc}", d, d, conv1x1=True)
                keys[f"{p}.attn.{sfc}.offset"] = (1, 2 * d, 1, 1)
            keys |= _linear(f"{p}.attn.reweight.fc1", d // 4, d) | _linear(f"{p}.attn.reweight.fc2", 3 * d, d // 4)
            keys |= _linear(f"{p}.attn.proj", d, d)
            keys |= _linear(f"{p}.mlp.fc1", hidden, d) | _linear(f"{p}.mlp.fc2", d, hidden)
        idx += 1
        if i < len(layers) - 1:
            keys[f"network.{idx}.proj.weight"] = (embed_dims[i + 1], d, 3, 3)
            keys[f"network.{idx}.proj.bias"] = (embed_dims[i + 1],)
            idx += 1
    return keys | _affine("norm", embed_dims[-1]) | _linear("head", num_classes, embed_dims[-1])


def mixer_layout(patch_size: int, num_blocks: int, embed_dim: int, img_size: int = 224,
                 num_classes: int = 1000) -> Layout:
    """timm timm/models/mlp_mixer.py (MlpMixer with MixerBlock, mlp_ratio (0.5, 4.0))."""
    seq = (img_size // patch_size) ** 2
    tokens, channels = int(0.5 * embed_dim), int(4.0 * embed_dim)
    keys: Layout = {"stem.proj.weight": (embed_dim, 3, patch_size, patch_size), "stem.proj.bias": (embed_dim,)}
    for b in range(num_blocks):
        p = f"blocks.{b}"
        keys |= _affine(f"{p}.norm1", embed_dim) | _affine(f"{p}.norm2", embed_dim)
        keys |= _linear(f"{p}.mlp_tokens.fc1", tokens, seq) | _linear(f"{p}.mlp_tokens.fc2", seq, tokens)
        keys |= _linear(f"{p}.mlp_channels.fc1", channels, embed_dim)
        keys |= _linear(f"{p}.mlp_channels.fc2", embed_dim, channels)
    return keys | _affine("norm", embed_dim) | _linear("head", num_classes, embed_dim)


_B = dict(embed_dims=(64, 128, 320, 512))
OFFICIAL_LAYOUTS = {
    "as_mlp_tiny": lambda: as_mlp_layout(96, (2, 2, 6, 2)),
    "as_mlp_small": lambda: as_mlp_layout(96, (2, 2, 18, 2)),
    "as_mlp_base": lambda: as_mlp_layout(128, (2, 2, 18, 2)),
    "as_mlp_mobile": lambda: as_mlp_layout(48, (2, 2, 6, 2)),
    "cycle_mlp_b1": lambda: cycle_mlp_layout((2, 2, 4, 2), mlp_ratios=(4, 4, 4, 4), **_B),
    "cycle_mlp_b2": lambda: cycle_mlp_layout((2, 3, 10, 3), mlp_ratios=(4, 4, 4, 4), **_B),
    "cycle_mlp_b3": lambda: cycle_mlp_layout((3, 4, 18, 3), mlp_ratios=(8, 8, 4, 4), **_B),
    "cycle_mlp_b4": lambda: cycle_mlp_layout((3, 8, 27, 3), mlp_ratios=(8, 8, 4, 4), **_B),
    "cycle_mlp_b5": lambda: cycle_mlp_layout((3, 4, 24, 3), (96, 192, 384, 768), (4, 4, 4, 4)),
    "cycle_mlp_mobile": lambda: cycle_mlp_layout((2, 2, 4, 2), (32, 64, 160, 256), (4, 4, 4, 4)),
    "mixer_s32": lambda: mixer_layout(32, 8, 512),
    "mixer_s16": lambda: mixer_layout(16, 8, 512),
    "mixer_b32": lambda: mixer_layout(32, 12, 768),
    "mixer_b16": lambda: mixer_layout(16, 12, 768),
    "mixer_mobile": lambda: mixer_layout(16, 8, 256),
}
