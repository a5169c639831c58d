using MaeMl.Model;

namespace MaeMl.Tests;

/// <summary>The architecture the tests build, train and export unless they need another: a record, so a test that differs says how
/// (<c>TestModels.Tiny with { Depth = 1 }</c>).</summary>
public static class TestModels
{
    /// <summary>16x16 images, patch 4 (16 patches), encoder 32x2 with 2 heads, decoder 16x1 with 2 heads.</summary>
    public static MaeConfig Tiny { get; } = new()
    {
        ImageSize = 16, PatchSize = 4, EmbedDim = 32, Depth = 2, NumHeads = 2, DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2,
    };
}
