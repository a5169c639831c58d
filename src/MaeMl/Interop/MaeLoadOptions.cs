using MaeMl.Model;

namespace MaeMl.Interop;

/// <summary>
/// How <see cref="MaeModelFile"/> builds a model from a weight file. Width, depth, patch size, image size, MLP ratio and
/// the decoder's width and depth are read from the tensor shapes; what shapes cannot tell (attention heads, loss settings)
/// comes from here, a preset, a Hugging Face <c>config.json</c> next to the file, or a known paper architecture.
/// </summary>
public sealed record MaeLoadOptions
{
    /// <summary>Encoder attention heads. Needed unless <see cref="Preset"/>, <see cref="Template"/>, a <c>config.json</c>
    /// or a paper architecture (ViT-B/L/H, tiny/small) with the same width, depth and patch size gives it.</summary>
    public int? NumHeads { get; init; }
    /// <summary>Decoder attention heads (same sources as <see cref="NumHeads"/>; the paper decoders use 16).</summary>
    public int? DecoderNumHeads { get; init; }
    /// <summary>A <see cref="MaePresets"/> name whose heads and non-shape settings are used.</summary>
    public string? Preset { get; init; }
    /// <summary>A configuration whose heads, decoder (for encoder-only files) and loss settings are used; shapes still come from the file.</summary>
    public MaeConfig? Template { get; init; }
    /// <summary>Input resolution of the built model. When it differs from the file's, the position tables are
    /// interpolated (bicubic, cls row kept) as the official <c>interpolate_pos_embed</c> does.</summary>
    public int? ImageSize { get; init; }
    /// <summary>Strict (default): any missing, unexpected or mis-shaped tensor is an error listing them all.
    /// Non-strict: loads what matches, leaves the rest at initialisation and lists it in the report.</summary>
    public bool Strict { get; init; } = true;
    /// <summary>Accept a file without decoder (the official <c>mae_pretrain_vit_*.pth</c>, Hugging Face <c>ViTMAEModel</c>)
    /// even when strict: the decoder is left at its initialisation, which the report states. Use the encoder only.</summary>
    public bool AllowMissingDecoder { get; init; }
    /// <summary>Top-level entry of a <c>torch.save</c> file holding the state dict (default: <c>model</c>, then <c>state_dict</c>, or a bare state dict).</summary>
    public string? CheckpointKey { get; init; }
    /// <summary>Classifier only: number of classes of a new head when the file has none (e.g. fine-tuning from a pretrain file)
    /// or to replace the file's head (its weights are then not loaded).</summary>
    public int? NumClasses { get; init; }
    /// <summary>Classifier only: global pooling + <c>fc_norm</c> (default when the file has <c>fc_norm</c> or no head) or cls token + <c>norm</c>.</summary>
    public bool? GlobalPool { get; init; }
}
