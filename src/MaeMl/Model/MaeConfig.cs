using System.Text.Json.Serialization;

namespace MaeMl.Model;

/// <summary>
/// Architecture and loss settings of a Masked Autoencoder ViT, as the official <c>MaskedAutoencoderViT</c>
/// constructor takes them. Use a preset (<see cref="MaePresets"/>) or build one and call <see cref="Validate"/>.
/// </summary>
public sealed record MaeConfig
{
    /// <summary>Side of the square input images in pixels (<c>img_size</c>, default 224); with <see cref="ImageHeight"/>, their width.</summary>
    public int ImageSize { get; init; } = 224;
    /// <summary>Height of non-square input images in pixels (timm's <c>img_size=(H, W)</c>, W being <see cref="ImageSize"/>), or null
    /// (the default) for square images. The dense models take any H x W; MAE pretraining is square-only, as the official <c>patchify</c>.
    /// Set both sides with <see cref="WithInputSize"/>.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public int? ImageHeight { get; init; }
    /// <summary>Side of a square patch in pixels, p (<c>patch_size</c>, default 16); must divide both sides of the input.</summary>
    public int PatchSize { get; init; } = 16;
    /// <summary>Image channels, C (<c>in_chans</c>, default 3).</summary>
    public int InChans { get; init; } = 3;
    /// <summary>Encoder width, D (<c>embed_dim</c>, default 1024 as ViT-L); divisible by 4 and by <see cref="NumHeads"/>.</summary>
    public int EmbedDim { get; init; } = 1024;
    /// <summary>Encoder blocks (<c>depth</c>, default 24).</summary>
    public int Depth { get; init; } = 24;
    /// <summary>Encoder attention heads (<c>num_heads</c>, default 16).</summary>
    public int NumHeads { get; init; } = 16;
    /// <summary>Decoder width (<c>decoder_embed_dim</c>, default 512); divisible by 4 and by <see cref="DecoderNumHeads"/>.</summary>
    public int DecoderEmbedDim { get; init; } = 512;
    /// <summary>Decoder blocks (<c>decoder_depth</c>, default 8).</summary>
    public int DecoderDepth { get; init; } = 8;
    /// <summary>Decoder attention heads (<c>decoder_num_heads</c>, default 16).</summary>
    public int DecoderNumHeads { get; init; } = 16;
    /// <summary>MLP hidden width over block width, encoder and decoder (<c>mlp_ratio</c>, default 4).</summary>
    public double MlpRatio { get; init; } = 4.0;
    /// <summary>Per-patch normalised pixel targets (the paper's best setting, on by default as in <c>main_pretrain.py --norm_pix_loss</c>).</summary>
    public bool NormPixLoss { get; init; } = true;
    /// <summary>Fraction of patches removed per image in pretraining (<c>--mask_ratio</c>, default 0.75); in [0, 1).</summary>
    public double MaskRatio { get; init; } = 0.75;
    /// <summary>Stochastic depth rate of the encoder blocks (0 in pretraining; used when fine-tuning).</summary>
    public double DropPath { get; init; }
    /// <summary>Epsilon of every LayerNorm (the presets' <c>partial(nn.LayerNorm, eps=1e-6)</c>, default 1e-6).</summary>
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>Width and height of the input images: <see cref="ImageSize"/> x (<see cref="ImageHeight"/> or <see cref="ImageSize"/>).</summary>
    [JsonIgnore]
    public InputSize InputSize => new(ImageSize, ImageHeight ?? ImageSize);
    /// <summary>The input is square (no <see cref="ImageHeight"/>, or one equal to <see cref="ImageSize"/>).</summary>
    [JsonIgnore]
    public bool IsSquare => InputSize.IsSquare;
    /// <summary>Patches along one side of a square grid (along the width, <see cref="GridWidth"/>, when the input is not square).</summary>
    public int GridSize => ImageSize / PatchSize;
    /// <summary>Patch rows, gh = H / p.</summary>
    [JsonIgnore]
    public int GridHeight => InputSize.Height / PatchSize;
    /// <summary>Patch columns, gw = W / p.</summary>
    [JsonIgnore]
    public int GridWidth => ImageSize / PatchSize;
    /// <summary>Number of patches L = gh * gw.</summary>
    public int NumPatches => GridHeight * GridWidth;
    /// <summary>Values in one patch: p*p*C.</summary>
    public int PatchDim => PatchSize * PatchSize * InChans;
    /// <summary>Visible patches per image: int(L * (1 - mask_ratio)), as the official code computes it.</summary>
    public int LenKeep => (int)(NumPatches * (1 - MaskRatio));

    /// <summary>This configuration at <paramref name="size"/>: <see cref="ImageSize"/> its width, <see cref="ImageHeight"/> its height
    /// (null when square, so a square configuration is the same record, and file, as before non-square inputs).</summary>
    public MaeConfig WithInputSize(InputSize size) => this with { ImageSize = size.Width, ImageHeight = size.IsSquare ? null : size.Height };

    /// <summary>Returns this configuration if it is consistent; throws <see cref="ArgumentException"/> with a message naming the bad setting.</summary>
    public MaeConfig Validate()
    {
        static void Check(bool ok, string message) { if (!ok) throw new ArgumentException($"Invalid MAE configuration: {message}"); }
        Check(ImageSize > 0 && PatchSize > 0, $"image size ({ImageSize}) and patch size ({PatchSize}) must be positive");
        Check(ImageSize % PatchSize == 0, ImageHeight is null ? $"image size {ImageSize} is not divisible by patch size {PatchSize}" : $"image width {ImageSize} is not divisible by patch size {PatchSize}");
        Check(ImageHeight is null or > 0, $"image height ({ImageHeight}) must be positive");
        Check(ImageHeight is null || ImageHeight % PatchSize == 0, $"image height {ImageHeight} is not divisible by patch size {PatchSize}");
        Check(InChans > 0, $"in_chans must be positive, got {InChans}");
        Check(EmbedDim > 0 && Depth > 0 && NumHeads > 0, $"encoder width ({EmbedDim}), depth ({Depth}) and heads ({NumHeads}) must be positive");
        Check(EmbedDim % NumHeads == 0, $"encoder heads ({NumHeads}) do not divide the encoder width ({EmbedDim})");
        Check(DecoderEmbedDim > 0 && DecoderDepth >= 0 && DecoderNumHeads > 0, $"decoder width ({DecoderEmbedDim}), depth ({DecoderDepth}) and heads ({DecoderNumHeads}) must be positive");
        Check(DecoderEmbedDim % DecoderNumHeads == 0, $"decoder heads ({DecoderNumHeads}) do not divide the decoder width ({DecoderEmbedDim})");
        Check(EmbedDim % 4 == 0 && DecoderEmbedDim % 4 == 0, "2-D sin-cos position embeddings need widths divisible by 4");
        Check(MaskRatio >= 0 && MaskRatio < 1, $"mask ratio must be in [0, 1), got {MaskRatio}");
        Check(LenKeep >= 1, $"mask ratio {MaskRatio} leaves no visible patch out of {NumPatches}");
        Check(MlpRatio > 0, $"mlp ratio must be positive, got {MlpRatio}");
        Check(DropPath >= 0 && DropPath < 1, $"drop path must be in [0, 1), got {DropPath}");
        Check(LayerNormEps > 0, $"LayerNorm eps must be positive, got {LayerNormEps}");
        return this;
    }
}
