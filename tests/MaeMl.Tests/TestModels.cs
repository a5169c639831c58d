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

    /// <summary>The repository's root (the folder with MaeMl.sln) above the test binaries: the shipped pretrained/ and samples/ live there.</summary>
    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "MaeMl.sln"))) return dir.FullName;
        throw new DirectoryNotFoundException("repository root (MaeMl.sln) not found above " + AppContext.BaseDirectory);
    }
}
