using MaeMl.Model;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Model;

/// <summary>Non-square inputs of the dense backbone (CamVid 160x120 -> a 40x30 grid with patch 4): the configuration, the sin-cos table of a
/// gh x gw grid, the square pretrained table interpolated to it, and the backbone's feature map [N, D, gh, gw] in token order.</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator
public sealed class NonSquareInputTests
{
    static readonly MaeConfig Tiny = new() { PatchSize = 4, EmbedDim = 16, Depth = 1, NumHeads = 2, DecoderEmbedDim = 8, DecoderDepth = 1, DecoderNumHeads = 2 };

    [Fact]
    public void ConfigurationCarriesBothSidesAndNamesTheBadOne()
    {
        var camvid = Tiny.WithInputSize(new InputSize(160, 120)).Validate();
        Assert.Equal((160, 120, 40, 30, 1200), (camvid.ImageSize, camvid.ImageHeight!.Value, camvid.GridWidth, camvid.GridHeight, camvid.NumPatches));
        Assert.Equal(new InputSize(160, 120), camvid.InputSize);
        Assert.Equal("160x120", camvid.InputSize.ToString());
        Assert.False(camvid.IsSquare);

        var square = Tiny.WithInputSize(32);   // an int is the square size; a square configuration has no height, the same record as before
        Assert.Null(square.ImageHeight);
        Assert.Equal(Tiny with { ImageSize = 32 }, square);
        Assert.Equal((8, 8, 8, 64), (square.GridSize, square.GridHeight, square.GridWidth, square.NumPatches));
        Assert.DoesNotContain("ImageHeight", System.Text.Json.JsonSerializer.Serialize(square));   // square files as before
        Assert.Contains("\"ImageHeight\":120", System.Text.Json.JsonSerializer.Serialize(camvid));
        Assert.Equal(camvid, System.Text.Json.JsonSerializer.Deserialize<MaeConfig>(System.Text.Json.JsonSerializer.Serialize(camvid)));

        Assert.Equal("Invalid MAE configuration: image height 42 is not divisible by patch size 4",
            Assert.Throws<ArgumentException>(() => (Tiny with { ImageSize = 40, ImageHeight = 42 }).Validate()).Message);
        Assert.Equal("Invalid MAE configuration: image width 42 is not divisible by patch size 4",
            Assert.Throws<ArgumentException>(() => (Tiny with { ImageSize = 42, ImageHeight = 40 }).Validate()).Message);
        Assert.Equal("Invalid MAE configuration: image height (0) must be positive",
            Assert.Throws<ArgumentException>(() => (Tiny with { ImageSize = 40, ImageHeight = 0 }).Validate()).Message);
        Assert.Equal("Invalid MAE configuration: image size 42 is not divisible by patch size 4",   // the square message as before
            Assert.Throws<ArgumentException>(() => (Tiny with { ImageSize = 42 }).Validate()).Message);
    }

    [Fact]
    public void MaePretrainingAndDetectionRefuseANonSquareInput()
    {
        var e = Assert.Throws<ArgumentException>(() => new MaskedAutoencoderViT(Tiny.WithInputSize(new InputSize(32, 16))));
        Assert.StartsWith("MAE pretraining takes square images", e.Message);
        Assert.Contains("32x16", e.Message);
        var d = Assert.Throws<ArgumentException>(() => new MaeMl.Detection.DetectionConfig(Tiny.WithInputSize(new InputSize(32, 16)), 2).Validate());
        Assert.StartsWith("Detection takes square inputs", d.Message);
        Assert.DoesNotContain('\n', e.Message + d.Message);
    }

    [Theory]
    [InlineData(3, 5)]
    [InlineData(5, 3)]
    [InlineData(1, 4)]
    public void SinCosRowsOfAGridEqualTheSquareFormulasAtTheSameRowAndColumn(int gh, int gw)
    {
        int g = Math.Max(gh, gw), d = 16;
        var rect = PositionEmbedding.SinCos2D(d, gh, gw, clsToken: true);
        var square = PositionEmbedding.SinCos2D(d, g, clsToken: true);
        Assert.Equal(1 + gh * gw, rect.GetLength(0));
        for (int k = 0; k < d; k++) Assert.Equal(0f, rect[0, k]);   // the cls row
        for (int row = 0; row < gh; row++)
        for (int col = 0; col < gw; col++)
        for (int k = 0; k < d; k++)
            Assert.Equal(square[1 + row * g + col, k], rect[1 + row * gw + col, k]);   // bit for bit
        // the first half encodes the column (the official meshgrid(grid_w, grid_h)): sin(0) along column 0, whatever the row
        for (int row = 0; row < gh; row++) Assert.Equal(0f, rect[1 + row * gw, 0]);
    }

    [Fact]
    public void InterpolatingASquareTableToANonSquareGridIsTorchsBicubicResizeOfTheGrid()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        const int d = 6;
        var table = randn(1, 1 + 4 * 4, d);
        Assert.True(OfficialFixture.Identical(table, PositionEmbeddingInterpolation.Interpolate(table, 4, 4)), "the same square grid must return the table unchanged");

        var resized = PositionEmbeddingInterpolation.Interpolate(table, 3, 7);
        Assert.Equal(new long[] { 1, 1 + 21, d }, resized.shape);
        Assert.True(OfficialFixture.Identical(table[.., ..1], resized[.., ..1]), "cls row changed");

        // torch's interpolate on the grid laid out [1, D, h, w] by hand: channel c of token row*w + col is at [0, c, row, col]
        var grid = zeros(1, d, 4, 4);
        for (int row = 0; row < 4; row++)
        for (int col = 0; col < 4; col++) grid[0, .., row, col] = table[0, 1 + row * 4 + col];
        var expected = nn.functional.interpolate(grid, new long[] { 3, 7 }, mode: InterpolationMode.Bicubic, align_corners: false);
        for (int row = 0; row < 3; row++)
        for (int col = 0; col < 7; col++)
            Assert.True(OfficialFixture.Identical(expected[0, .., row, col], resized[0, 1 + row * 7 + col]), $"token ({row}, {col})");

        // rows and columns are not swapped: a field equal to the row index stays the row index when only the width changes
        var rowField = cat(new[] { zeros(1, 1, 1), arange(4, dtype: ScalarType.Float32).repeat_interleave(4).reshape(1, 16, 1) }, 1);
        var wider = PositionEmbeddingInterpolation.Interpolate(rowField, 4, 9)[0, 1.., 0].reshape(4, 9);
        Assert.True(OfficialFixture.MaxAbsDiff(wider, arange(4, dtype: ScalarType.Float32).unsqueeze(1).expand(4, 9)) < 1e-6);
        Assert.Throws<ArgumentException>(() => PositionEmbeddingInterpolation.Interpolate(table, 0, 3));
    }

    [Fact]
    public void TheBackboneTakesASquareMaesWeightsAndReturnsAGridOfTheInputsShapeInTokenOrder()
    {
        var c = OfficialFixture.Config;   // 16 px, patch 4: a 4x4 grid
        using var mae = OfficialFixture.Model();
        var wide = c.WithInputSize(new InputSize(24, 12));   // a 6 x 3 grid
        using var backbone = VisionTransformer.FromMae(mae, VitClassifierConfig.Backbone(wide));
        var state = backbone.state_dict();
        using (var expected = PositionEmbeddingInterpolation.Interpolate(mae.state_dict()["pos_embed"], 3, 6))
            Assert.True(OfficialFixture.Identical(expected, state["pos_embed"]));

        manual_seed(5);
        using var x = randn(2, 3, 12, 24);
        using var _ = no_grad();
        backbone.eval();
        using var map = backbone.forward(x);
        Assert.Equal(new long[] { 2, c.EmbedDim, 3, 6 }, map.shape);
        using var tokens = backbone.ForwardTokens(x);
        using var normed = nn.functional.layer_norm(tokens, [c.EmbedDim], state["norm.weight"], state["norm.bias"], c.LayerNormEps);
        for (int row = 0; row < 3; row++)
        for (int col = 0; col < 6; col++)
            Assert.True(OfficialFixture.MaxAbsDiff(map[.., .., row, col], normed[.., 1 + row * 6 + col]) < 1e-6, $"cell ({row}, {col})");

        var wrong = Assert.Throws<ArgumentException>(() => backbone.forward(randn(1, 3, 24, 12)));
        Assert.Equal("Expected images [N, 3, 12, 24], got [1, 3, 24, 12]", wrong.Message);
    }
}
