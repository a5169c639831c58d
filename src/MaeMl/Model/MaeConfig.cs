namespace MaeMl.Model;

/// <summary>
/// Architecture and loss settings of a Masked Autoencoder ViT, as the official <c>MaskedAutoencoderViT</c>
/// constructor takes them. Use a preset (<see cref="MaePresets"/>) or build one and call <see cref="Validate"/>.
/// </summary>
public sealed record MaeConfig
{
    public int ImageSize { get; init; } = 224;
    public int PatchSize { get; init; } = 16;
    public int InChans { get; init; } = 3;
    public int EmbedDim { get; init; } = 1024;
    public int Depth { get; init; } = 24;
    public int NumHeads { get; init; } = 16;
    public int DecoderEmbedDim { get; init; } = 512;
    public int DecoderDepth { get; init; } = 8;
    public int DecoderNumHeads { get; init; } = 16;
    public double MlpRatio { get; init; } = 4.0;
    /// <summary>Per-patch normalised pixel targets (the paper's best setting, on by default as in <c>main_pretrain.py --norm_pix_loss</c>).</summary>
    public bool NormPixLoss { get; init; } = true;
    public double MaskRatio { get; init; } = 0.75;
    /// <summary>Stochastic depth rate of the encoder blocks (0 in pretraining; used when fine-tuning).</summary>
    public double DropPath { get; init; }
    public double LayerNormEps { get; init; } = 1e-6;

    /// <summary>Patches along one side.</summary>
    public int GridSize => ImageSize / PatchSize;
    /// <summary>Number of patches L.</summary>
    public int NumPatches => GridSize * GridSize;
    /// <summary>Values in one patch: p*p*C.</summary>
    public int PatchDim => PatchSize * PatchSize * InChans;
    /// <summary>Visible patches per image: int(L * (1 - mask_ratio)), as the official code computes it.</summary>
    public int LenKeep => (int)(NumPatches * (1 - MaskRatio));

    /// <summary>Throws <see cref="ArgumentException"/> with a message naming the bad setting.</summary>
    public MaeConfig Validate()
    {
        static void Check(bool ok, string message) { if (!ok) throw new ArgumentException($"Invalid MAE configuration: {message}"); }
        Check(ImageSize > 0 && PatchSize > 0, $"image size ({ImageSize}) and patch size ({PatchSize}) must be positive");
        Check(ImageSize % PatchSize == 0, $"image size {ImageSize} is not divisible by patch size {PatchSize}");
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
