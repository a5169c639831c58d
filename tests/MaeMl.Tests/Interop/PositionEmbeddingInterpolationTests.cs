using MaeMl.Interop;
using MaeMl.Model;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Interop;

[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public class PositionEmbeddingInterpolationTests(ITestOutputHelper output)
{
    static string PyTorchFixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "pytorch-checkpoints", name);

    [Theory]
    [InlineData("pos_embed", 6)]
    [InlineData("decoder_pos_embed", 6)]
    [InlineData("pos_embed", 8)]
    public void MatchesTheOfficialInterpolatePosEmbed(string key, int grid)
    {
        using var scope = NewDisposeScope();
        var ours = PositionEmbeddingInterpolation.Interpolate(OfficialFixture.Npy($"state_dict/{key}.npy"), grid);
        var err = OfficialFixture.MaxAbsDiff(ours, NpyFile.Load(PyTorchFixture($"{key}.interpolated{grid}.npy")));
        output.WriteLine($"{key} 4x4 -> {grid}x{grid}: max abs err vs PyTorch {err:E2}");
        Assert.InRange(err, 0, 1e-6);
    }

    [Fact]
    public void KeepsTheClsRowAndResizesTheGrid()
    {
        using var scope = NewDisposeScope();
        var table = randn(1, 1 + 4 * 4, 8);
        var same = PositionEmbeddingInterpolation.Interpolate(table, 4);
        Assert.True(OfficialFixture.Identical(table, same));

        var up = PositionEmbeddingInterpolation.Interpolate(table, 7);
        Assert.Equal(new long[] { 1, 1 + 49, 8 }, up.shape);
        Assert.True(OfficialFixture.Identical(table[.., ..1], up[.., ..1]), "cls row changed");

        // bicubic (align_corners=False) keeps a constant field constant, and a 2x upsample of a 2x2 checkerboard-free ramp is monotone
        var constant = cat(new[] { zeros(1, 1, 8), full(1, 16, 8, 0.5f) }, 1);
        var constantUp = PositionEmbeddingInterpolation.Interpolate(constant, 8);
        Assert.InRange(OfficialFixture.MaxAbsDiff(constantUp[.., 1..], full(1, 64, 8, 0.5f)), 0, 1e-6);
        var ramp = cat(new[] { zeros(1, 1, 1), arange(4, dtype: ScalarType.Float32).repeat(4).reshape(1, 16, 1) }, 1);  // value = column
        var rampUp = PositionEmbeddingInterpolation.Interpolate(ramp, 8)[0, 1..9, 0];   // first row of the new grid
        Assert.True((rampUp[1..] - rampUp[..^1]).ge(0).all().item<bool>(), "interpolated ramp is not monotone");
    }

    [Fact]
    public void FixtureLoadsAtAnotherResolutionWithInterpolatedSinCosTables()
    {
        using var scope = NewDisposeScope();
        var options = new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2, ImageSize = 32 };
        using var model = MaeModelFile.LoadMae(OfficialFixture.PathOf("checkpoint-full.pth"), options, out var report);
        output.WriteLine(report.ToString());
        Assert.Equal(32, model.Config.ImageSize);
        Assert.Equal(2, report.Interpolated.Count);
        Assert.Contains(report.Interpolated, s => s.StartsWith("pos_embed [1, 17, 32] -> [1, 65, 32]"));
        var sd = model.state_dict();
        using var expected = PositionEmbeddingInterpolation.Interpolate(OfficialFixture.Npy("state_dict/pos_embed.npy"), 8);
        Assert.True(OfficialFixture.Identical(expected, sd["pos_embed"]));
        foreach (var key in new[] { "pos_embed", "decoder_pos_embed" })
        {
            // PyTorch's util/pos_embed.interpolate_pos_embed on the same table (torch 1.13)
            var err = OfficialFixture.MaxAbsDiff(sd[key], NpyFile.Load(PyTorchFixture($"{key}.interpolated8.npy")));
            output.WriteLine($"{key} 4x4 -> 8x8 vs PyTorch: max abs err {err:E2}");
            Assert.InRange(err, 0, 1e-6);
        }
        // the interpolated fixed table stays close to the exact sin-cos table of the new grid at low frequencies
        using var exact = tensor(PositionEmbedding.SinCos2D(32, 8, clsToken: true)).unsqueeze(0);
        output.WriteLine($"interpolated vs exact 8x8 sin-cos: max abs diff {OfficialFixture.MaxAbsDiff(expected, exact):E2}");

        torch.manual_seed(3);
        var result = model.Forward(randn(2, 3, 32, 32));
        Assert.Equal(new long[] { 2, 64, 48 }, result.Pred.shape);
        Assert.True(float.IsFinite(result.Loss.item<float>()));
    }
}
