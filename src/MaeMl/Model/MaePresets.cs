namespace MaeMl.Model;

/// <summary>
/// Named architectures. The paper's encoders (<c>mae_vit_{base,large}_patch16</c>, <c>mae_vit_huge_patch14</c>)
/// carry the 512-wide 8-block decoder, as in <c>models_mae.py</c>; the tiny/small ones follow DeiT widths;
/// the <c>_img32</c> ones are for 32x32 images such as CIFAR-10 (patch 4: 64 patches).
/// </summary>
public static class MaePresets
{
    static MaeConfig Paper(int patch, int dim, int depth, int heads) => new()
    {
        ImageSize = 224, PatchSize = patch, EmbedDim = dim, Depth = depth, NumHeads = heads,
        DecoderEmbedDim = 512, DecoderDepth = 8, DecoderNumHeads = 16,
    };

    /// <summary><c>mae_vit_base_patch16_dec512d8b</c>: 224x224, patch 16, ViT-B encoder 768x12 (12 heads), decoder 512x8 (16 heads).</summary>
    public static MaeConfig MaeVitBasePatch16Dec512d8b => Paper(16, 768, 12, 12);
    /// <summary><c>mae_vit_large_patch16_dec512d8b</c>: 224x224, patch 16, ViT-L encoder 1024x24 (16 heads), decoder 512x8 (16 heads).</summary>
    public static MaeConfig MaeVitLargePatch16Dec512d8b => Paper(16, 1024, 24, 16);
    /// <summary><c>mae_vit_huge_patch14_dec512d8b</c>: 224x224, patch 14, ViT-H encoder 1280x32 (16 heads), decoder 512x8 (16 heads).</summary>
    public static MaeConfig MaeVitHugePatch14Dec512d8b => Paper(14, 1280, 32, 16);
    /// <summary>224x224, patch 16, DeiT-S encoder 384x12 (6 heads), the paper's decoder 512x8 (16 heads); not an official preset.</summary>
    public static MaeConfig MaeVitSmallPatch16Dec512d8b => Paper(16, 384, 12, 6);
    /// <summary>224x224, patch 16, DeiT-Ti encoder 192x12 (3 heads), the paper's decoder 512x8 (16 heads); not an official preset.</summary>
    public static MaeConfig MaeVitTinyPatch16Dec512d8b => Paper(16, 192, 12, 3);

    /// <summary>32x32, patch 4, encoder 192x6 (3 heads), decoder 128x2 (4 heads): the CPU reference configuration.</summary>
    public static MaeConfig MaeVitTinyPatch4Img32Dec128d2b => new()
    {
        ImageSize = 32, PatchSize = 4, EmbedDim = 192, Depth = 6, NumHeads = 3,
        DecoderEmbedDim = 128, DecoderDepth = 2, DecoderNumHeads = 4,
    };

    /// <summary>32x32, patch 4, encoder 384x12 (6 heads), decoder 256x4 (8 heads).</summary>
    public static MaeConfig MaeVitSmallPatch4Img32Dec256d4b => new()
    {
        ImageSize = 32, PatchSize = 4, EmbedDim = 384, Depth = 12, NumHeads = 6,
        DecoderEmbedDim = 256, DecoderDepth = 4, DecoderNumHeads = 8,
    };

    /// <summary>Preset names as accepted by <see cref="Get"/> and the CLI's <c>--model</c>.</summary>
    public static IReadOnlyDictionary<string, Func<MaeConfig>> All { get; } = new Dictionary<string, Func<MaeConfig>>(StringComparer.OrdinalIgnoreCase)
    {
        ["mae_vit_base_patch16"] = () => MaeVitBasePatch16Dec512d8b,
        ["mae_vit_large_patch16"] = () => MaeVitLargePatch16Dec512d8b,
        ["mae_vit_huge_patch14"] = () => MaeVitHugePatch14Dec512d8b,
        ["mae_vit_small_patch16"] = () => MaeVitSmallPatch16Dec512d8b,
        ["mae_vit_tiny_patch16"] = () => MaeVitTinyPatch16Dec512d8b,
        ["mae_vit_tiny_patch4_img32"] = () => MaeVitTinyPatch4Img32Dec128d2b,
        ["mae_vit_small_patch4_img32"] = () => MaeVitSmallPatch4Img32Dec256d4b,
    };

    /// <summary>A fresh configuration of the preset <paramref name="name"/> (case-insensitive, a key of <see cref="All"/>); throws
    /// <see cref="ArgumentException"/> listing the known names otherwise.</summary>
    public static MaeConfig Get(string name) =>
        All.TryGetValue(name, out var make) ? make()
        : throw new ArgumentException($"Unknown MAE preset '{name}'. Known presets: {string.Join(", ", All.Keys)}.");
}
